"""The typed client against real anvil chains: attaching, refusals, faults and nonces."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from web3 import Web3

from contracts import errors
from contracts.anvil import LocalAnvil
from contracts.build import load_artifact
from contracts.client import Ledger
from tests.contracts.conftest import two_rounds_in_one_block

ZERO = "0x" + "00" * 20


def _send_raw(anvil: LocalAnvil, account, data: str, to: str | None = None, nonce: int | None = None) -> dict:
    """Deploy or call outside the client, as another tool sharing the key would."""
    if nonce is None:
        nonce = int(anvil.rpc("eth_getTransactionCount", [account.address, "pending"]), 16)
    tx = {"chainId": anvil.chain_id, "nonce": nonce, "gas": 3_000_000, "maxFeePerGas": 10**11,
          "maxPriorityFeePerGas": 10**9, "data": data, "value": 0, "type": 2}
    if to is not None:
        tx["to"] = to
    signed = account.sign_transaction(tx)
    tx_hash = anvil.rpc("eth_sendRawTransaction", ["0x" + signed.raw_transaction.hex()])
    return anvil.rpc("eth_getTransactionReceipt", [tx_hash])


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ attach


def test_attach_reads_the_same_ledger_and_signs_with_any_key(deploy_ledger, anvil, accounts):
    ledger = deploy_ledger()
    ledger.set_coordinator(accounts[1].address)
    attached = Ledger.attach(anvil.rpc_url, ledger.address.lower(), accounts[0], expected_chain_id=anvil.chain_id)
    assert attached.address == ledger.address
    assert attached.coordinator() == accounts[1].address
    attached.register_participant(accounts[2].address, "via attach")
    assert ledger.is_participant(accounts[2].address)
    # A hex private key works as well as a signer object.
    by_hex = Ledger.attach(anvil.rpc_url, ledger.address, "0x" + accounts[0].key.hex())
    assert by_hex.account == accounts[0].address


def test_attach_refuses_an_account_without_code(anvil, accounts):
    with pytest.raises(errors.AttachRefused, match="no contract at"):
        Ledger.attach(anvil.rpc_url, accounts[5].address)


def test_attach_refuses_a_malformed_address(anvil):
    with pytest.raises(errors.AttachRefused, match="not an Ethereum address"):
        Ledger.attach(anvil.rpc_url, "0x1234")


def test_attach_refuses_other_bytecode(anvil, accounts):
    # A 5-byte contract that always reverts: clearly not a FederationLedger.
    receipt = _send_raw(anvil, accounts[8], "0x6005600c60003960056000f360006000fd")
    with pytest.raises(errors.AttachRefused, match="not the FederationLedger of this build"):
        Ledger.attach(anvil.rpc_url, receipt["contractAddress"])


def _constructor_args(genesis: bytes, descriptor: bytes, min_updates: int, grace: int, secure: bool) -> str:
    return abi_encode(["bytes32", "bytes32", "uint32", "uint64", "bool"], [genesis, descriptor, min_updates, grace, secure]).hex()


def test_attach_refuses_a_ledger_built_differently(anvil, accounts):
    """Same length, one byte different in the metadata hash: still refused."""
    artifact = load_artifact()
    code = bytearray(bytes.fromhex(artifact.bytecode[2:]))
    code[-10] ^= 0xFF  # inside the trailing CBOR metadata hash, never executed
    args = _constructor_args(os.urandom(32), os.urandom(32), 1, 3600, False)
    receipt = _send_raw(anvil, accounts[8], "0x" + code.hex() + args)
    assert int(receipt["status"], 16) == 1
    with pytest.raises(errors.AttachRefused, match="same length but different bytes"):
        Ledger.attach(anvil.rpc_url, receipt["contractAddress"])


def test_attach_accepts_any_immutables_and_reads_them(anvil, accounts):
    """The constructor writes genesis, descriptor, quorum, grace and mode into the runtime code;
    attach compares the code with those bytes masked, so every deployment of the artifact attaches."""
    genesis, descriptor = os.urandom(32), os.urandom(32)
    receipt = _send_raw(anvil, accounts[8], load_artifact().bytecode + _constructor_args(genesis, descriptor, 7, 5, True))
    ledger = Ledger.attach(anvil.rpc_url, receipt["contractAddress"])
    assert (ledger.genesis_model(), ledger.descriptor_digest()) == (genesis, descriptor)
    assert (ledger.min_updates(), ledger.abort_grace(), ledger.secure_aggregation()) == (7, 5, True)


def test_attach_and_deploy_refuse_the_wrong_chain(deploy_ledger, anvil, accounts):
    ledger = deploy_ledger()
    with pytest.raises(errors.AttachRefused, match=f"serves chain {anvil.chain_id}, expected chain 1$"):
        Ledger.attach(anvil.rpc_url, ledger.address, expected_chain_id=1)
    with pytest.raises(errors.AttachRefused):
        Ledger.deploy(anvil.rpc_url, accounts[0], os.urandom(32), 1, expected_chain_id=5)


# ------------------------------------------------------------------ faults


def test_unreachable_rpc_names_the_url_quickly(accounts):
    url = f"http://127.0.0.1:{_unused_port()}"
    started = time.monotonic()
    with pytest.raises(errors.RpcUnavailable) as exc:
        Ledger.attach(url, accounts[0].address)
    assert exc.value.url == url and url in str(exc.value)
    assert exc.value.hint
    with pytest.raises(errors.RpcUnavailable):
        Ledger.deploy(url, accounts[0], os.urandom(32), 1)
    assert time.monotonic() - started < 10, "no silent retry loop"


def test_node_going_away_mid_session_is_rpc_unavailable(accounts):
    chain = LocalAnvil(accounts=2).start()
    try:
        ledger = Ledger.deploy(chain.rpc_url, chain.accounts[0], os.urandom(32), 1)
        url = chain.rpc_url
    finally:
        chain.stop()
    with pytest.raises(errors.RpcUnavailable, match=url):
        ledger.latest_model()
    with pytest.raises(errors.RpcUnavailable, match=url):
        ledger.set_coordinator(accounts[1].address)


def test_bad_url_scheme_is_invalid_argument(accounts):
    with pytest.raises(errors.InvalidArgument, match="http://"):
        Ledger.attach("127.0.0.1:8545", accounts[0].address)


def test_unfunded_key_gets_insufficient_funds(federation, anvil):
    poor = Account.create()
    federation.admin.register_participant(poor.address, "no ether")
    rid = federation.open_round()
    with pytest.raises(errors.InsufficientFunds) as exc:
        federation.admin.with_account(poor).submit_update(rid, os.urandom(32), 1, 0)
    assert poor.address in str(exc.value) and "balance 0 wei" in str(exc.value)
    with pytest.raises(errors.InsufficientFunds):
        Ledger.deploy(anvil.rpc_url, poor, os.urandom(32), 1)


def test_malformed_key_is_invalid_key_and_never_echoed(anvil):
    bad = "0x" + "zz" * 32
    with pytest.raises(errors.InvalidKey) as exc:
        Ledger.deploy(anvil.rpc_url, bad, os.urandom(32), 1)
    assert "zz" not in str(exc.value)
    with pytest.raises(errors.InvalidKey):
        Ledger.deploy(anvil.rpc_url, "0x1234", os.urandom(32), 1)


def test_read_only_connection_refuses_to_send(deploy_ledger, anvil):
    ledger = deploy_ledger()
    reader = Ledger.attach(anvil.rpc_url, ledger.address)
    assert reader.account is None
    assert reader.admin() == ledger.admin()
    with pytest.raises(errors.InvalidKey, match="no signing key"):
        reader.set_coordinator(ledger.admin())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.submit_update(1, b"\x01" * 31, 1, 0), "32-byte digest, got 31"),
        (lambda m: m.submit_update(1, "0xnothex", 1, 0), "not hex"),
        (lambda m: m.submit_update(1, os.urandom(32), -1, 0), "num_samples"),
        (lambda m: m.submit_update(1, os.urandom(32), 1, 2**32), "epsilon_milli"),
        (lambda m: m.finalize_round(1, os.urandom(32), os.urandom(32), ["0xabc"], [1]), "participants\\[0\\]"),
        (lambda m: m.finalize_round(1, os.urandom(32), os.urandom(32), [ZERO], [2**31]), "scores\\[0\\]"),
        (lambda m: m.get_events(["NoSuchEvent"]), "unknown event"),
    ],
)
def test_bad_arguments_are_rejected_before_sending(federation, call, message):
    member = federation.participants[0]
    before = member.request_counts["eth_sendRawTransaction"]
    with pytest.raises(errors.InvalidArgument, match=message):
        call(member)
    assert member.request_counts["eth_sendRawTransaction"] == before


# ------------------------------------------------------------------ nonces and receipts


def test_one_key_sending_from_many_threads(deploy_ledger, accounts):
    admin = deploy_ledger()
    other_handle = admin.with_account(accounts[0])  # a second Ledger object, same key
    targets = [Account.create().address for _ in range(16)]
    failures: list[BaseException] = []
    results = []

    def work(handle, chunk):
        try:
            for address in chunk:
                results.append(handle.register_participant(address, "t"))
        except BaseException as exc:  # collected and asserted below
            failures.append(exc)

    threads = [
        threading.Thread(target=work, args=(admin if i % 2 else other_handle, targets[i::4])) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(admin.participants()) == sorted(targets)
    nonces = [r.receipt["transactionIndex"] for r in results]  # all mined
    assert len(nonces) == 16


def test_nonce_resyncs_after_another_tool_used_the_key(deploy_ledger, anvil, accounts):
    ledger = deploy_ledger()
    ledger.set_coordinator(accounts[1].address)  # caches the admin's next nonce
    # Another program spends that nonce behind the client's back.
    _send_raw(anvil, accounts[0], "0x", to=accounts[7].address)
    result = ledger.register_participant(accounts[2].address, "after resync")
    assert result.gas_used > 0 and ledger.is_participant(accounts[2].address)


def test_a_transaction_that_reverts_when_mined_raises_the_decoded_error(federation, anvil):
    """A participant restarted mid-send submits its update twice from two processes sharing its
    key; both are estimated before either is mined, so the second reverts in the block. Its
    receipt has status 0 and the client replays it to name the custom error."""
    fed = federation
    rid = fed.open_round()
    first, second = os.urandom(32), os.urandom(32)
    sender = fed.participants[0]
    other_process = sender.with_account(next(a for a in anvil.accounts if a.address == sender.account))
    outcomes: dict[int, object] = {}

    def submit(i, handle, update):
        try:
            outcomes[i] = handle.submit_update(rid, update, 10, 0)
        except errors.LedgerError as exc:
            outcomes[i] = exc

    anvil.rpc("evm_setAutomine", [False])
    try:
        threads = [threading.Thread(target=submit, args=(0, sender, first)),
                   threading.Thread(target=submit, args=(1, other_process, second))]  # fmt: skip
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while int(anvil.rpc("txpool_status")["pending"], 16) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        anvil.rpc("evm_mine")
        for t in threads:
            t.join(timeout=30)
    finally:
        anvil.rpc("evm_setAutomine", [True])
    failed = [o for o in outcomes.values() if isinstance(o, errors.LedgerError)]
    assert len(outcomes) == 2 and len(failed) == 1
    assert isinstance(failed[0], errors.AlreadySubmitted)
    landed = fed.admin.get_submission(rid, sender.account).update
    assert failed[0].update == landed and landed in (first, second)
    assert failed[0].tx_hash is not None and failed[0].tx_hash in str(failed[0])
    assert fed.admin.get_round(rid).submission_count == 1


# ------------------------------------------------------------------ reading back from events


def test_older_submissions_are_read_back_from_events(federation):
    """Storage holds each member's latest submission only; get_submission, submissions,
    submitters and participant_rounds read earlier ones from the events."""
    fed = federation
    a, b, _ = fed.participants
    updates = {}
    for round_id in (1, 2, 3):
        fed.open_round()
        for member in (a, b) if round_id != 2 else (a,):
            updates[round_id, member.account] = os.urandom(32)
            member.submit_update(round_id, updates[round_id, member.account], round_id, 10 * round_id)
        fed.chain.increase_time(3601)
        fed.coordinator.finalize_round(round_id, os.urandom(32), os.urandom(32), [a.account], [round_id])
    raw = fed.admin.contract.functions.getSubmission(1, a.account).call()
    assert not any(raw[0])  # a's latest submission is round 3's: round 1 is not in storage
    old = fed.admin.get_submission(1, a.account)
    assert (old.update, old.num_samples, old.epsilon_milli, old.score) == (updates[1, a.account], 1, 10, 1)
    assert fed.admin.get_submission(1, b.account).score is None
    assert fed.admin.get_submission(2, b.account) is None  # b skipped round 2
    assert fed.admin.submitters(1) == [a.account, b.account]
    assert fed.admin.submitters(2) == [a.account]
    assert [s.update for s in fed.admin.submissions(3)] == [updates[3, a.account], updates[3, b.account]]
    assert fed.admin.participant_rounds(a.account) == [1, 2, 3]
    assert fed.admin.participant_rounds(b.account) == [1, 3]
    assert fed.admin.participant_rounds(fed.addresses[2]) == []


def test_two_submissions_of_one_member_in_one_block(custom_federation, anvil):
    """A member's submissions to round N and N+1 can land in one block (round N closes with the
    first, the coordinator finalises it and opens N+1 within the block). The later event's
    previousBlock then names its own block, and walking back must take the earlier event there;
    the client takes the block's last event again, so round N is lost and N+1 counted twice."""
    fed = custom_federation(participants=1)
    first = two_rounds_in_one_block(fed, anvil)
    assert fed.admin.participant_rounds(fed.addresses[0]) == [first, first + 1]


def test_receipt_timeout_is_typed(deploy_ledger, anvil, accounts):
    ledger = deploy_ledger()
    impatient = Ledger.attach(anvil.rpc_url, ledger.address, accounts[0], receipt_timeout=0.5)
    anvil.rpc("evm_setAutomine", [False])
    try:
        with pytest.raises(errors.ReceiptTimeout, match="not mined within"):
            impatient.set_coordinator(accounts[1].address)
    finally:
        anvil.rpc("evm_mine")
        anvil.rpc("evm_setAutomine", [True])
    assert ledger.coordinator() == accounts[1].address  # it was sent, just not yet mined


def _deploy_reverter(anvil: LocalAnvil, account, payload: bytes) -> str:
    """A contract whose every call reverts with ``payload`` as revert data."""
    n = len(payload)
    runtime = bytes([0x60, n, 0x60, 0x0C, 0x60, 0x00, 0x39, 0x60, n, 0x60, 0x00, 0xFD]) + payload
    init = bytes([0x60, len(runtime), 0x60, 0x0C, 0x60, 0x00, 0x39, 0x60, len(runtime), 0x60, 0x00, 0xF3])
    return _send_raw(anvil, account, "0x" + (init + runtime).hex())["contractAddress"]


@pytest.mark.parametrize(
    ("payload", "error", "shown"),
    [
        (bytes.fromhex("08c379a0") + (32).to_bytes(32, "big") + (4).to_bytes(32, "big") + b"nope".ljust(32, b"\0"),
         "Error", "reason=nope"),
        (bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big"), "Panic", "code=0x11"),
        (bytes.fromhex("deadbeef"), "Revert", "data=0xdeadbeef"),
    ],
)
def test_reverts_that_are_not_ledger_errors_are_still_typed(anvil, accounts, deploy_ledger, payload, error, shown):
    """Code other than FederationLedger (reached only by skipping attach's checks) reverting with
    a reason string, a panic or unknown data still gives a typed, readable error."""
    reference = deploy_ledger()
    address = Web3.to_checksum_address(_deploy_reverter(anvil, accounts[8], payload))
    ledger = Ledger(
        reference.w3, address, reference.chain_id, reference.rpc_url, accounts[0],
        artifact=load_artifact(), receipt_timeout=10,
    )
    with pytest.raises(errors.UnknownRevert) as exc:
        ledger.admin()
    assert exc.value.error == error and f"admin reverted: {error}({shown})" in str(exc.value)
    with pytest.raises(errors.UnknownRevert):
        ledger.set_coordinator(accounts[1].address)
