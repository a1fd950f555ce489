"""The admin's governance commands on the CLI (issue 12.6), against a real anvil, the compiled ledger and the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from contracts.anvil import LocalAnvil
from contracts.client import RoundState
from tests.helpers.runtime import ROOT, make_env, run_round


def _admin(chain: LocalAnvil, ledger: str, key: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FEDLEDGER_PRIVATE_KEY=key)
    return subprocess.run(
        [sys.executable, "-m", "fedledger", "admin", *args, "--rpc-url", chain.rpc_url, "--ledger", ledger,
         "--chain-id", str(chain.chain_id)], cwd=ROOT, capture_output=True, text=True, timeout=180, env=env,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def test_the_admin_governs_from_the_cli_and_nobody_else_can(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: the admin had no command for abort, remove-participant, set-coordinator or the way
    back from a bad model; a coordinator that went away, or a poisoned global model, needed
    hand-written transactions (and until the ledger changed, there was no way back at all).

    Now `fedledger admin` has all four plus `rebase`, each one transaction with its gas printed;
    the chain refuses a member's key for them and an abort before the deadline plus the grace,
    each refusal one line with a hint, the key never printed."""
    env = make_env(tmp_path, chain)
    address = env.ledger.address
    admin_key = chain.accounts[0].key.hex()
    member_key = env.orgs[0].key.hex()
    genesis = env.ledger.genesis_model()
    assert run_round(env, [0, 1, 2]).finalized and env.ledger.latest_model() != genesis

    refused = _admin(chain, address, member_key, "rebase", "0")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr and member_key not in refused.stdout + refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 2 and "hint" in refused.stderr, refused.stderr
    print(f"\nmember key: {refused.stderr.strip()}")
    done = _admin(chain, address, admin_key, "rebase", "0")
    assert done.returncode == 0 and "gas" in done.stderr, done.stderr
    assert env.ledger.latest_model() == genesis and admin_key not in done.stdout + done.stderr

    done = _admin(chain, address, admin_key, "remove-participant", env.orgs[2].address)
    assert done.returncode == 0, done.stderr
    assert not env.ledger.is_participant(env.orgs[2].address)

    rid = env.coordinator_ledger.open_round(env.ledger.latest_model(), chain.block_timestamp() + 60).round_id
    early = _admin(chain, address, admin_key, "abort", str(rid))
    assert early.returncode == 1 and "Traceback" not in early.stderr and env.ledger.get_round(rid).state == RoundState.OPEN
    print(f"early abort: {early.stderr.strip()}")
    chain.increase_time(60 + 121)  # the deadline plus the grace: the coordinator walked away
    done = _admin(chain, address, admin_key, "abort", str(rid))
    assert done.returncode == 0, done.stderr
    assert env.ledger.get_round(rid).state == RoundState.ABORTED

    new_coordinator = chain.accounts[-1].address
    done = _admin(chain, address, admin_key, "set-coordinator", new_coordinator)
    assert done.returncode == 0, done.stderr
    assert env.ledger.coordinator() == new_coordinator
