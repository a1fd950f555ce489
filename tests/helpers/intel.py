"""Federations and checks for the detection and sharing tests.

``make_nsl_env`` builds what ``tests.helpers.runtime.make_env`` builds, for NSL-KDD flows
instead of synthetic ones (so raw flow files can be scored): a real ledger on the given
anvil, the embedded store, a descriptor whose normaliser comes from the training rows'
statistics, and two registered organisations holding the fixture rows.
"""

from __future__ import annotations

from pathlib import Path

from contracts.anvil import LocalAnvil
from fedledger.deploy import create_federation
from fedledger.intel.stix import validate
from flows import load_split
from ipfs import EmbeddedStore
from tests.helpers.runtime import Env

DATA = Path(__file__).resolve().parents[1] / "data"


def make_nsl_env(tmp_path: Path, chain: LocalAnvil, *, participants: int = 2) -> tuple[Env, object]:
    """(the federation, its test split) on ``chain``: NSL-KDD fixture rows, one organisation per slice."""
    store_dir = tmp_path / "store"
    store = EmbeddedStore(store_dir)
    admin, coordinator_key, *orgs = chain.accounts[: participants + 2]
    split = load_split("nsl-kdd", DATA / "nsl_kdd_train.txt", DATA / "nsl_kdd_test.txt")
    fed = create_federation(
        rpc_url=chain.rpc_url, admin=admin, store=store, name="nsl-test", validation=split.test, hidden=(16,),
        min_updates=1, seed=3, expected_chain_id=chain.chain_id, normaliser=split.normaliser.to_dict(),
        coordinator=coordinator_key.address, holdout_dir=tmp_path / "holdouts", reveal_seconds=3, abort_grace=120,
    )  # fmt: skip
    for i, acct in enumerate(orgs):
        fed.ledger.register_participant(acct.address, f"org-{i}")
    n = len(split.train)
    data = [split.train.subset(list(range(i, n, participants))) for i in range(participants)]
    return Env(chain, store, store_dir, fed, list(orgs), data, tmp_path, coordinator_key), split


def assert_valid_bundle(text: str) -> None:
    """stix2-validator finds no error, and no warning beyond the ones the design accepts."""
    result = validate(text)
    assert result.ok, result.errors[:5]
    assert not result.unexpected_warnings(), result.unexpected_warnings()[:5]
