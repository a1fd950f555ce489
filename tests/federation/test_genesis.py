"""The genesis model a descriptor commits to: seeded, pretrained by a recipe anyone re-runs, or a parent's model."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from federation import genesis as genesis_mod
from federation.descriptor import Descriptor, InvalidDescriptor
from federation.flowset import flowset_bytes
from federation.genesis import (
    GenesisError,
    ParentModel,
    Pretraining,
    parse_genesis,
    seeded_model,
)
from federation.metrics import evaluate
from federation.model import ModelSpec, load_model_bytes, save_model_bytes
from federation.model.network import init_model
from flows.synthetic import generate
from ipfs import ContentNotFound, EmbeddedStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def public():  # type: ignore[no-untyped-def]
    return generate(3000, 21)


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def _descriptor(spec: ModelSpec, genesis=None) -> Descriptor:  # type: ignore[no-untyped-def]
    return Descriptor(name="transfer", spec=spec, validation="QmValidation", seed=3, genesis=genesis)


def _pretrained(store: EmbeddedStore, public, **recipe) -> Descriptor:  # type: ignore[no-untyped-def]
    cid = store.put(flowset_bytes(public))
    return _descriptor(ModelSpec.for_dataset(public, hidden=(32, 16)), Pretraining(cid, torch="2.13.0", **recipe))


def test_a_seeded_descriptor_keeps_its_bytes_and_its_genesis_needs_no_store(public) -> None:  # type: ignore[no-untyped-def]
    desc = _descriptor(ModelSpec.for_dataset(public, hidden=(32, 16)))
    assert b"genesis" not in desc.to_bytes()  # a federation made before pretraining existed reads the same document
    assert Descriptor.from_bytes(desc.to_bytes()) == desc
    assert desc.genesis_model() == seeded_model(desc.spec, desc.genesis_seed())


def test_a_pretrained_genesis_is_the_recipe_run_on_the_public_set_and_it_learnt(store, public) -> None:  # type: ignore[no-untyped-def]
    desc = _pretrained(store, public, epochs=4)
    assert Descriptor.from_bytes(desc.to_bytes()).genesis == desc.genesis
    first = desc.genesis_model(store)
    assert desc.genesis_model(store) == first
    assert first != seeded_model(desc.spec, desc.genesis_seed())
    _, weights = load_model_bytes(first, desc.spec)
    test = generate(1500, 22)
    assert evaluate(weights, desc.spec, test)["macro_f1"] > evaluate(init_model(desc.spec, desc.genesis_seed()), desc.spec, test)["macro_f1"] + 0.3
    # every recipe field is bound: one epoch more is another genesis
    assert _pretrained(store, public, epochs=5).genesis_model(store) != first


def test_another_process_with_more_threads_re_derives_the_same_genesis_bytes(store, public, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    desc = _pretrained(store, public, epochs=2)
    (tmp_path / "descriptor.json").write_bytes(desc.to_bytes())
    script = (
        "import sys, torch; torch.set_num_threads(2)\n"
        "from federation.descriptor import Descriptor; from ipfs import EmbeddedStore\n"
        "d = Descriptor.from_bytes(open(sys.argv[1], 'rb').read())\n"
        "sys.stdout.buffer.write(d.genesis_model(EmbeddedStore(sys.argv[2])))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "descriptor.json"), str(tmp_path / "store")],
        cwd=ROOT, capture_output=True, check=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="2"),
    )  # fmt: skip
    assert out.stdout == desc.genesis_model(store)


def test_pretraining_an_auditor_is_asked_to_re_run_is_capped_before_any_training(store, public, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    desc = _pretrained(store, public, epochs=200)
    monkeypatch.setattr(genesis_mod, "MAX_PRETRAIN_SAMPLES", 100_000)  # 200 epochs x 3,000 flows = 600,000
    t0 = time.perf_counter()
    with pytest.raises(GenesisError, match=r"200 epochs over 3,000 flows \(600,000 sample passes\)"):
        desc.genesis_model(store)
    assert time.perf_counter() - t0 < 2.0


def test_a_withheld_or_wrong_pretraining_set_is_named(store, public) -> None:  # type: ignore[no-untyped-def]
    desc = _pretrained(store, public)
    missing = _descriptor(desc.spec, replace(desc.genesis, dataset="QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"))
    with pytest.raises(ContentNotFound):
        missing.genesis_model(store)
    garbage = _descriptor(desc.spec, replace(desc.genesis, dataset=store.put(b"not a flow set" * 100)))
    with pytest.raises(GenesisError, match=r"pretraining data set Qm\w+: flow set: "):
        garbage.genesis_model(store)
    with pytest.raises(GenesisError, match="from the store"):
        desc.genesis_model(None)


def test_a_parent_genesis_is_the_parents_canonical_model_of_the_same_spec(store, public) -> None:  # type: ignore[no-untyped-def]
    spec = ModelSpec.for_dataset(public, hidden=(32, 16))
    model = save_model_bytes(spec, init_model(spec, 99))
    parent = ParentModel(31337, "0x" + "ab" * 20, 4, store.put(model))
    assert _descriptor(spec, parent).genesis_model(store) == model
    other = ModelSpec.for_dataset(public, hidden=(8,))
    with pytest.raises(GenesisError, match="does not fit this federation's model spec"):
        _descriptor(other, parent).genesis_model(store)


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ([], "genesis should be an object"),
        ({"kind": "magic"}, "genesis kind should be"),
        ({"kind": "pretrained", "dataset": "Qm", "torch": "2", "recipe": {}}, "recipe should be"),
        ({"kind": "pretrained", "dataset": 7, "torch": "2", "recipe": Pretraining("Q").to_dict()["recipe"]}, "should be a CID"),
        ({**Pretraining("Q").to_dict(), "recipe": {**Pretraining("Q").to_dict()["recipe"], "lr": float("nan")}}, "lr in"),
        ({**Pretraining("Q").to_dict(), "recipe": {**Pretraining("Q").to_dict()["recipe"], "epochs": True}}, "epochs in"),
        ({**Pretraining("Q").to_dict(), "extra": 1}, "pretrained genesis should be"),
        ({**ParentModel(1, "0x" + "00" * 20, 1, "Q").to_dict(), "ledger": "0x12"}, "ledger address"),
        ({**ParentModel(1, "0x" + "00" * 20, 1, "Q").to_dict(), "round": 0}, "round >= 1"),
    ],
)
def test_a_hostile_genesis_entry_is_refused_by_name(entry, named: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(GenesisError, match=named):
        parse_genesis(entry)


def test_a_descriptor_with_a_bad_genesis_entry_is_one_line(public) -> None:  # type: ignore[no-untyped-def]
    desc = _descriptor(ModelSpec.for_dataset(public, hidden=(8,)), Pretraining("Qm"))
    blob = desc.to_bytes().replace(b'"epochs":5', b'"epochs":500')
    with pytest.raises(InvalidDescriptor, match="epochs in 1..200") as info:
        Descriptor.from_bytes(blob)
    assert "\n" not in str(info.value).split("\nhint")[0]
