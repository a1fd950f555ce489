"""Typed Python client of the FederationLedger contract: one method per contract function.

Transactions are signed locally with eth-account keys and sent raw, so the same code runs
against anvil and any EVM JSON-RPC endpoint (no node-unlocked accounts). Every contract
revert surfaces as the matching :mod:`contracts.errors` exception with the decoded
arguments; an unreachable node, a key without funds and a wrong contract or chain each get
their own typed error.

    ledger = Ledger.deploy(url, admin_key, genesis_digest, min_updates=2)
    ledger.set_coordinator(coordinator.address)
    coord = ledger.with_account(coordinator_key)
    round_id = coord.open_round(ledger.latest_model(), deadline).round_id
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts import errors
from contracts.abi import Abi
from contracts.build import Artifact, load_artifact
from contracts.events import DEFAULT_LOG_PAGE, EventLog
from contracts.nonces import forget_nonces
from contracts.records import (
    Deployed,
    LedgerEvent,
    RoundInfo,
    RoundOpened,
    RoundPhases,
    RoundState,
    Submission,
    TxResult,
)
from contracts.transport import (
    DEFAULT_RECEIPT_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    CountingProvider,
    Transport,
    connect,
)
from contracts.values import (
    KeyLike,
    as_account,
    as_address,
    as_bytes32,
    as_int,
    as_uint,
)

DEFAULT_ABORT_GRACE = 3600  # seconds after a round's deadline from which any member may abort it
PARTICIPANT_PAGE = 500  # participants per eth_call: well inside common gas caps

__all__ = [
    "DEFAULT_ABORT_GRACE",
    "DEFAULT_LOG_PAGE",
    "Deployed",
    "Ledger",
    "LedgerEvent",
    "RoundInfo",
    "RoundOpened",
    "RoundPhases",
    "RoundState",
    "Submission",
    "TxResult",
    "as_account",
    "as_address",
    "forget_nonces",
]


class Ledger:
    """A connection to one deployed FederationLedger, optionally with a signing key.

    Build one with :meth:`deploy` or :meth:`attach`; :meth:`with_account` gives the same
    connection with another signer. Methods named like the contract's functions (in
    snake_case) send a transaction and return a :class:`TxResult`; views return plain
    values or frozen dataclasses.
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        chain_id: int,
        rpc_url: str,
        account: LocalAccount | None,
        *,
        artifact: Artifact,
        receipt_timeout: float,
        deployment: Deployed | None = None,
    ) -> None:
        self.w3 = w3
        self.address = address
        self.chain_id = chain_id
        self.rpc_url = rpc_url
        self._account = account
        self._artifact = artifact
        self._abi = Abi(artifact)
        self._contract = w3.eth.contract(address=address, abi=artifact.abi)
        self.receipt_timeout = receipt_timeout
        self.deployment = deployment
        self._transport = Transport(
            w3, rpc_url, chain_id, self._abi, receipt_timeout=receipt_timeout,
            decode_events=lambda receipt: self._events.decode_receipt(receipt),
            sender=account.address if account is not None else None,
        )  # fmt: skip
        self._events = EventLog(self._transport, self._contract, address, self._abi)

    # ------------------------------------------------------------------ construction

    @classmethod
    def deploy(
        cls,
        rpc_url: str,
        account: KeyLike,
        genesis_model: bytes | str,
        min_updates: int,
        *,
        descriptor: bytes | str | None = None,
        abort_grace: int = DEFAULT_ABORT_GRACE,
        secure_aggregation: bool = False,
        expected_chain_id: int | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        artifact: Artifact | None = None,
    ) -> Ledger:
        """Deploy a new ledger from the committed artifact; the deploying key becomes admin.

        ``descriptor`` is the digest of the federation descriptor the ledger is bound to
        (None: the genesis digest, for ledgers that carry no descriptor, e.g. in tests);
        ``abort_grace`` the seconds after a round's deadline from which any member may abort it.
        """
        artifact = artifact or load_artifact()
        signer = as_account(account)
        genesis = as_bytes32(genesis_model, "genesis_model")
        desc = as_bytes32(descriptor, "descriptor") if descriptor is not None else genesis
        min_updates = as_uint(min_updates, 32, "min_updates")
        grace = as_uint(abort_grace, 64, "abort_grace")
        w3, chain_id = connect(rpc_url, request_timeout, expected_chain_id)
        placeholder = cls(
            w3, "0x" + "00" * 20, chain_id, rpc_url, signer, artifact=artifact, receipt_timeout=receipt_timeout
        )
        args = abi_encode(["bytes32", "bytes32", "uint32", "uint64", "bool"], [genesis, desc, min_updates, grace, bool(secure_aggregation)])
        data = artifact.bytecode + args.hex()
        result = placeholder._transport.send("constructor", {"data": data}, signer)
        address = Web3.to_checksum_address(result.receipt["contractAddress"])
        deployed = Deployed(
            function="constructor",
            tx_hash=result.tx_hash,
            block_number=result.block_number,
            gas_used=result.gas_used,
            events=(),
            receipt=result.receipt,
            address=address,
        )
        ledger = cls(
            w3, address, chain_id, rpc_url, signer,
            artifact=artifact, receipt_timeout=receipt_timeout, deployment=deployed,
        )
        object.__setattr__(deployed, "events", ledger._events.decode_receipt(result.receipt))
        return ledger

    @classmethod
    def attach(
        cls,
        rpc_url: str,
        address: str,
        account: KeyLike | None = None,
        *,
        expected_chain_id: int | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        artifact: Artifact | None = None,
    ) -> Ledger:
        """Connect to an existing ledger; refuses a contract whose runtime code is not this
        artifact's, and a chain other than ``expected_chain_id``."""
        artifact = artifact or load_artifact()
        signer = as_account(account) if account is not None else None
        try:
            checksum = as_address(address, "ledger address")
        except errors.InvalidArgument as exc:
            raise errors.AttachRefused(str(exc), hint="pass the address printed when the ledger was deployed") from None
        w3, chain_id = connect(rpc_url, request_timeout, expected_chain_id)
        ledger = cls(w3, checksum, chain_id, rpc_url, signer, artifact=artifact, receipt_timeout=receipt_timeout)
        with ledger._transport.rpc("eth_getCode"):
            code = bytes(w3.eth.get_code(checksum))
        expected = bytes.fromhex(artifact.deployed_bytecode[2:])
        if not code:
            raise errors.AttachRefused(
                f"no contract at {checksum} on chain {chain_id} ({rpc_url})",
                hint="check the address and that you are on the chain the ledger was deployed to",
            )
        # The constructor writes the immutables (genesis, descriptor, quorum, ...) into the runtime code:
        # compare with those bytes zeroed, then the views tell the values.
        if artifact.runtime_template(code) != artifact.runtime_template(expected):
            raise errors.AttachRefused(
                f"the contract at {checksum} on chain {chain_id} is not the FederationLedger of this build "
                f"(runtime code is {len(code)} bytes, expected {len(expected)} bytes"
                f"{', same length but different bytes' if len(code) == len(expected) else ''})",
                hint="attach to a ledger deployed from contracts/build/FederationLedger.json, or deploy a new one",
            )
        return ledger

    def with_account(self, account: KeyLike | None) -> Ledger:
        """The same connection and contract with another signer (or read-only with None)."""
        return Ledger(
            self.w3, self.address, self.chain_id, self.rpc_url,
            as_account(account) if account is not None else None,
            artifact=self._artifact, receipt_timeout=self.receipt_timeout, deployment=self.deployment,
        )

    @property
    def account(self) -> str | None:
        """The signer's address (the key itself is never exposed by the client)."""
        return self._account.address if self._account is not None else None

    def sign_digest(self, digest: bytes) -> bytes:
        """The signer's EIP-191 signature (65 bytes) of a 32-byte digest, for messages that live off chain.

        The key stays inside the client; anyone recovers the address from the signature.
        """
        if self._account is None:
            raise errors.InvalidArgument("signing needs an account", hint="attach with the member's key")
        if len(digest) != 32:
            raise errors.InvalidArgument(f"a digest to sign is 32 bytes, got {len(digest)}")
        return bytes(self._account.sign_message(encode_defunct(primitive=digest)).signature)

    @property
    def contract(self) -> Any:
        """The underlying web3 contract (for batching views with ``w3.batch_requests()``)."""
        return self._contract

    @property
    def request_counts(self) -> Counter[str]:
        """JSON-RPC requests made through this connection, by method."""
        provider = self.w3.provider
        return provider.counts if isinstance(provider, CountingProvider) else Counter()

    # ------------------------------------------------------------------ transactions

    def set_coordinator(self, coordinator: str) -> TxResult:
        return self._transact("setCoordinator", as_address(coordinator, "coordinator"))

    def register_participant(self, participant: str, name: str) -> TxResult:
        if not isinstance(name, str):
            raise errors.InvalidArgument(f"participant name must be text, got {type(name).__name__}")
        return self._transact("registerParticipant", as_address(participant, "participant"), name)

    def remove_participant(self, participant: str) -> TxResult:
        return self._transact("removeParticipant", as_address(participant, "participant"))

    def transfer_admin(self, new_admin: str) -> TxResult:
        return self._transact("transferAdmin", as_address(new_admin, "new admin"))

    def accept_admin(self) -> TxResult:
        return self._transact("acceptAdmin")

    def open_round(self, base_model: bytes | str, deadline: int, share_deadline: int = 0) -> RoundOpened:
        """Open the next round; deadlines are Unix times in seconds (chain clock).

        ``share_deadline`` closes the share phase of a secure-aggregation round (0 otherwise).
        """
        result = self._transact(
            "openRound", as_bytes32(base_model, "base_model"), as_uint(share_deadline, 64, "share_deadline"),
            as_uint(deadline, 64, "deadline"),
        )  # fmt: skip
        opened = [e for e in result.events if e.name == "RoundOpened"]
        if len(opened) != 1:
            raise errors.TransactionFailed(f"openRound tx {result.tx_hash} emitted no RoundOpened event")
        return RoundOpened(**{**result.__dict__, "round_id": int(opened[0].args["roundId"])})

    def submit_update(self, round_id: int, update: bytes | str, num_samples: int, epsilon_milli: int) -> TxResult:
        return self._transact(
            "submitUpdate",
            as_uint(round_id, 256, "round_id"),
            as_bytes32(update, "update"),
            as_uint(num_samples, 64, "num_samples"),
            as_uint(epsilon_milli, 32, "epsilon_milli"),
        )

    def finalize_round(
        self,
        round_id: int,
        global_model: bytes | str,
        manifest: bytes | str,
        participants: Sequence[str],
        scores: Sequence[int],
    ) -> TxResult:
        return self._transact(
            "finalizeRound",
            as_uint(round_id, 256, "round_id"),
            as_bytes32(global_model, "global_model"),
            as_bytes32(manifest, "manifest"),
            [as_address(p, f"participants[{i}]") for i, p in enumerate(participants)],
            [as_int(s, 32, f"scores[{i}]") for i, s in enumerate(scores)],
        )

    def abort_round(self, round_id: int) -> TxResult:
        return self._transact("abortRound", as_uint(round_id, 256, "round_id"))

    def publish_shares(self, round_id: int, bundle: bytes | str) -> TxResult:
        return self._transact("publishShares", as_uint(round_id, 256, "round_id"), as_bytes32(bundle, "bundle"))

    def reveal_shares(self, round_id: int, reveal: bytes | str) -> TxResult:
        return self._transact("revealShares", as_uint(round_id, 256, "round_id"), as_bytes32(reveal, "reveal"))

    def set_member_key(self, key: bytes | str) -> TxResult:
        return self._transact("setMemberKey", as_bytes32(key, "member key"))

    def rebase_lineage(self, round_id: int) -> TxResult:
        return self._transact("rebaseLineage", as_uint(round_id, 256, "round_id"))

    # ------------------------------------------------------------------ views

    def admin(self) -> str:
        return str(self._call("admin"))

    def pending_admin(self) -> str | None:
        value = str(self._call("pendingAdmin"))
        return None if int(value, 16) == 0 else value

    def coordinator(self) -> str | None:
        value = str(self._call("coordinator"))
        return None if int(value, 16) == 0 else value

    def genesis_model(self) -> bytes:
        return bytes(self._call("genesisModel"))

    def descriptor_digest(self) -> bytes:
        """The digest of the federation descriptor this ledger was deployed for."""
        return bytes(self._call("descriptor"))

    def secure_aggregation(self) -> bool:
        return bool(self._call("secureAggregation"))

    def abort_grace(self) -> int:
        return int(self._call("abortGrace"))

    def member_key(self, participant: str) -> bytes | None:
        key = bytes(self._call("memberKey", as_address(participant, "participant")))
        return None if not any(key) else key

    def participant_count(self) -> int:
        return int(self._call("participantCount"))

    def latest_model(self) -> bytes:
        return bytes(self._call("latestModel"))

    def latest_finalized_round(self) -> int:
        return int(self._call("latestFinalizedRound"))

    def current_round(self) -> int:
        return int(self._call("currentRound"))

    def min_updates(self) -> int:
        return int(self._call("minUpdates"))

    def is_participant(self, account: str) -> bool:
        return bool(self._call("isParticipant", as_address(account, "account")))

    def participant_name(self, account: str) -> str:
        return str(self._call("participantName", as_address(account, "account")))

    def participants(self, *, page: int = PARTICIPANT_PAGE) -> list[str]:
        """The current participants, read in pages so an eth_call gas cap never cuts the list."""
        total = self.participant_count()
        out: list[str] = []
        while len(out) < total:
            chunk = [str(a) for a in self._call("participantsPage", len(out), page)]
            if not chunk:
                break  # the set shrank while we read it
            out.extend(chunk)
        return out

    def round_phases(self, round_id: int) -> RoundPhases:
        base_round, eligible, share_deadline, shares, reveals, closed, abortable = self._call(
            "roundPhases", as_uint(round_id, 256, "round_id")
        )
        return RoundPhases(
            round_id=round_id, base_round=int(base_round), eligible=int(eligible), share_deadline=int(share_deadline),
            share_count=int(shares), reveal_count=int(reveals), submissions_closed=bool(closed),
            abortable_at=int(abortable),
        )  # fmt: skip

    def get_round(self, round_id: int) -> RoundInfo:
        base, global_model, manifest, deadline, state, count, opened, closed = self._call(
            "getRound", as_uint(round_id, 256, "round_id")
        )
        state = RoundState(state)
        finalized = state is RoundState.FINALIZED
        return RoundInfo(
            round_id=round_id,
            base_model=bytes(base),
            global_model=bytes(global_model) if finalized else None,
            manifest=bytes(manifest) if finalized else None,
            deadline=int(deadline),
            state=state,
            submission_count=int(count),
            opened_block=int(opened),
            closed_block=int(closed) if state is not RoundState.OPEN else None,
        )

    def get_submission(self, round_id: int, participant: str) -> Submission | None:
        """The participant's submission to the round, or None when it did not submit.

        The contract keeps each member's latest submission in storage; an earlier one is read
        back from its UpdateSubmitted and ContributionScored events.
        """
        address = as_address(participant, "participant")
        update, samples, epsilon, score, block, scored = self._call(
            "getSubmission", as_uint(round_id, 256, "round_id"), address
        )
        if any(bytes(update)):
            return Submission(round_id, address, bytes(update), int(samples), int(epsilon), int(score) if scored else None,
                              int(block))  # fmt: skip
        _, last_round, _ = self._call("submissionHistory", address)
        if int(last_round) <= round_id:
            return None  # its latest submission is older (or this one): it did not submit to this round
        return next((s for s in self.submissions(round_id) if s.participant == address), None)

    def submissions(self, round_id: int) -> list[Submission]:
        """Every submission to the round in on-chain order, with scores, read from the round's events."""
        info = self.get_round(round_id)
        to_block = info.closed_block if info.closed_block is not None else self.block_number()
        events = self.get_events(
            ("UpdateSubmitted", "ContributionScored"), from_block=info.opened_block, to_block=to_block, round_id=round_id
        )
        scores = {e.args["participant"]: int(e.args["score"]) for e in events if e.name == "ContributionScored"}
        subs = [
            Submission(round_id, e.args["participant"], bytes(e.args["update"]), int(e.args["numSamples"]),
                       int(e.args["epsilonMilli"]), scores.get(e.args["participant"]), e.block_number)  # fmt: skip
            for e in events
            if e.name == "UpdateSubmitted"
        ]
        if len(subs) != info.submission_count:
            raise errors.LedgerError(
                f"the node's logs for round {round_id} hold {len(subs)} submissions, the contract counts "
                f"{info.submission_count} (blocks {info.opened_block}..{to_block})",
                hint="the node may be pruning logs or still syncing; query an archive node",
            )
        return subs

    def submitters(self, round_id: int) -> list[str]:
        """The accounts that submitted to the round, in on-chain order."""
        return [s.participant for s in self.submissions(round_id)]

    def submission_history(self, participant: str) -> tuple[int, int, int]:
        """(submission count, latest round, latest block) of a participant; 0s when it never submitted."""
        count, last_round, last_block = self._call("submissionHistory", as_address(participant, "participant"))
        return int(count), int(last_round), int(last_block)

    def participant_rounds(self, participant: str) -> list[int]:
        """The rounds the participant submitted to, oldest first (walks its events back block by block)."""
        return [int(e.args["roundId"]) for e in self.submission_events(participant)]

    def submission_events(self, participant: str) -> list[LedgerEvent]:
        """The participant's UpdateSubmitted events, oldest first, walked back from its latest block by block.

        Two of its submissions may share a block (a round closed and the next opened in it): at each
        block the walk takes the latest round it has not yet passed.
        """
        address = as_address(participant, "participant")
        count, last_round, block = self.submission_history(address)
        found: list[LedgerEvent] = []
        below = last_round + 1
        while block and len(found) < count:
            here = [
                e for e in self.get_events(("UpdateSubmitted",), from_block=block, to_block=block, participant=address)
                if int(e.args["roundId"]) < below
            ]  # fmt: skip
            if not here:
                raise errors.LedgerError(
                    f"no UpdateSubmitted log of {address} before round {below} in block {block}, though the contract "
                    "points there",
                    hint="the node may be pruning logs or still syncing; query an archive node",
                )
            event = max(here, key=lambda e: int(e.args["roundId"]))
            found.append(event)
            below = int(event.args["roundId"])
            block = int(event.args["previousBlock"])
        return found[::-1]

    def total_score(self, participant: str) -> int:
        return int(self._call("totalScore", as_address(participant, "participant")))

    def total_epsilon_milli(self, participant: str) -> int:
        return int(self._call("totalEpsilonMilli", as_address(participant, "participant")))

    def block_number(self) -> int:
        return self._transport.block_number()

    def now(self) -> int:
        """Seconds since the epoch as round deadlines are judged: the later of the wall clock and the latest block.

        A chain's clock can run ahead of the host's (a test chain whose time was moved
        forward, a node with a skewed clock); deadlines are judged by block time.
        """
        with self._transport.rpc("eth_getBlockByNumber"):
            block_ts = int(self.w3.eth.get_block("latest")["timestamp"])
        return max(int(time.time()), block_ts)

    def get_events(
        self,
        names: Sequence[str] | None = None,
        *,
        from_block: int = 0,
        to_block: int | None = None,
        round_id: int | None = None,
        participant: str | None = None,
        page_size: int = DEFAULT_LOG_PAGE,
    ) -> list[LedgerEvent]:
        """Decoded events of this ledger, oldest first (see :meth:`contracts.events.EventLog.get_events`)."""
        return self._events.get_events(
            names, from_block=from_block, to_block=to_block, round_id=round_id, participant=participant, page_size=page_size
        )

    # ------------------------------------------------------------------ events

    def _call(self, function: str, *args: Any) -> Any:
        with self._transport.rpc(function):
            return self._contract.functions[function](*args).call()

    def _require_account(self, function: str) -> LocalAccount:
        if self._account is None:
            raise errors.InvalidKey(
                f"{function} sends a transaction, but this ledger connection has no signing key",
                hint="attach with account=... or use ledger.with_account(key)",
            )
        return self._account

    def _transact(self, function: str, *args: Any) -> TxResult:
        signer = self._require_account(function)
        data = self._contract.encode_abi(function, args=list(args))
        return self._transport.send(function, {"to": self.address, "data": data}, signer)
