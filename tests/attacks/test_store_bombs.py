"""DAG bombs: a member hands the federation a CID whose DAG is tiny on disk and endless to walk.

Played against the real CLI, the embedded store on disk, a real anvil with the compiled
ledger, the coordinator service and the audit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from fedledger.audit import Auditor
from ipfs import EmbeddedStore, MalformedDag, cid_to_digest
from tests.attacks.dags import deep_chains, fan_out_bomb
from tests.helpers.runtime import ROOT, make_env, manifest_of


def _ipfs(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "fedledger", "ipfs", *args], check=False, cwd=ROOT, capture_output=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return done, time.monotonic() - t0


def _import(store: Path, car: Path) -> str:
    done, _ = _ipfs("dag", "import", "--store", str(store), str(car))
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def test_the_zero_size_fan_out_bomb_imports_and_ipfs_cat_refuses_it_at_once(tmp_path: Path) -> None:
    """Before: a CAR of five blocks (a root with 174 links, four levels deep, all to one empty
    leaf, every declared size 0) imported fine, and `fedledger ipfs cat` of it was still walking
    174**4 links after 30 s: the reader followed any DAG it was handed.

    Now the CAR still imports (every block hashes right), but the walk refuses the first link
    that declares a child of 0 bytes: cat exits 1 with one line naming the DAG as malformed,
    and the reader gives up in milliseconds."""
    bomb = fan_out_bomb(levels=4, fan=174)
    car = tmp_path / "bomb.car"
    car.write_bytes(bomb.car())
    assert car.stat().st_size < 40_000  # a few KB on disk
    store = tmp_path / "store"
    assert _import(store, car) == bomb.cid
    # The alias the issue names imports it too.
    done, _ = _ipfs("import-car", "--store", str(tmp_path / "other"), str(car))
    assert done.returncode == 0 and done.stdout.decode().strip() == bomb.cid

    done, seconds = _ipfs("cat", "--store", str(store), bomb.cid, timeout=30)
    err = done.stderr.decode()
    assert done.returncode == 1 and done.stdout == b""
    assert "malformed" in err and "0 bytes" in err and "Traceback" not in err
    assert seconds < 5, seconds  # the whole process, start-up included

    t0 = time.perf_counter()
    with pytest.raises(MalformedDag, match="0 bytes"):
        EmbeddedStore(store).get(bomb.cid)
    assert time.perf_counter() - t0 < 0.5


def test_honest_looking_sizes_do_not_make_a_bomb_either(tmp_path: Path) -> None:
    """Before (with the zero-size check in place): the same fan-out with one-byte leaves and every
    size declared truthfully (174**4 leaves, a 916 MB file) passed every size check, and
    `fedledger ipfs cat` took 12.7 s to reach the block budget of 447,592 blocks, printing 447 KB
    on the way; at six levels the budget is 1.3e10 blocks and cat would run for days.

    Now a leaf shorter than 4 KiB anywhere but at the end of the file is refused (the profile's
    leaves hold 256 KiB; the block budget assumes at least 4 KiB), so cat stops at the first
    leaf. A DAG whose every leaf is full-sized but which hangs each one under a chain of 15
    single-link nodes (16 blocks per 4 KiB) is stopped by the block budget."""
    store = tmp_path / "store"
    for levels in (4, 6):
        bomb = fan_out_bomb(levels=levels, fan=174, leaf_data=b"x", honest_sizes=True)
        car = tmp_path / f"honest-{levels}.car"
        car.write_bytes(bomb.car())
        assert _import(store, car) == bomb.cid
        done, seconds = _ipfs("cat", "--store", str(store), bomb.cid, timeout=60)
        err = done.stderr.decode()
        assert done.returncode == 1 and "malformed" in err and "leaf" in err, err
        assert len(done.stdout) < 4096 and seconds < 5, (len(done.stdout), seconds)

    chains = deep_chains(chains=174, depth=15, leaf_bytes=4096)
    car = tmp_path / "chains.car"
    car.write_bytes(chains.car())
    assert _import(store, car) == chains.cid
    done, seconds = _ipfs("cat", "--store", str(store), chains.cid, timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 1 and "blocks for the size it declares" in err, err
    assert seconds < 5, seconds


def test_a_member_committing_a_dag_bomb_is_rejected_malformed_and_the_round_finalises(tmp_path: Path, chain: LocalAnvil) -> None:
    """Before: a member committed the bomb's CID as its update; the coordinator's fetch walked it
    (its deadline was checked only when an exception was raised, its byte limit counted only
    bytes returned), so the round never closed, and the audit hung the same way.

    Now the coordinator's fetch refuses both bombs (zero sizes; honest sizes with one-byte
    leaves) in well under a second, records `malformed-dag` for each in the manifest, finalises
    with the two honest members, and the audit re-derives the same verdicts."""
    env = make_env(tmp_path, chain, participants=4, min_updates=2)
    zero = fan_out_bomb(levels=4, fan=174)
    honest = fan_out_bomb(levels=1, fan=174, leaf_data=b"x", honest_sizes=True)  # 174 bytes: under the update limit
    for name, dag in (("zero", zero), ("honest", honest)):
        car = tmp_path / f"{name}.car"
        car.write_bytes(dag.car())
        assert _import(env.store_dir, car) == dag.cid

    fetch_seconds: dict[str, float] = {}
    coord = env.coordinator(on_event=lambda kind, info: kind == "fetched" and "participant" in info
                            and fetch_seconds.__setitem__(info["participant"], info["seconds"]))  # fmt: skip
    assert coord.step(None) == "opened"
    for i in (0, 1):
        assert env.participant(i).step() is not None
    for i, dag in ((2, zero), (3, honest)):
        env.ledger.with_account(env.orgs[i]).submit_update(1, cid_to_digest(dag.cid), 500, 0)
    assert env.ledger.round_phases(1).submissions_closed  # every eligible member committed
    for i in (0, 1):
        env.participant(i).step()  # reveal
    t0 = time.monotonic()
    out = coord.close_round(1)
    assert time.monotonic() - t0 < 30
    assert out is not None and out.finalized
    assert sorted(out.result.aggregated) == sorted(env.orgs[i].address for i in (0, 1))
    entries = {e["participant"]: e for e in manifest_of(env, 1)["submissions"]}
    for i in (2, 3):
        assert (entries[env.orgs[i].address]["status"], entries[env.orgs[i].address]["reason"]) == ("rejected", "malformed-dag")
        assert fetch_seconds[env.orgs[i].address] < 1.0, fetch_seconds

    t0 = time.monotonic()
    report = Auditor(env.ledger, env.store, fetch_timeout=3.0).audit()
    assert report.ok, report.to_dict()
    assert report.rounds[0].verdict == "verified" and report.rounds[0].rejected == 2
    assert time.monotonic() - t0 < 30
