"""Personalisation by local fine-tuning: real torch, and the personal model never reaches an update."""

from __future__ import annotations

import numpy as np
import pytest

from federation.metrics import evaluate
from federation.model import ModelSpec
from federation.model.network import init_model
from federation.training import train_local
from fedledger.simulate import SimulationConfig, run_simulation
from flows.synthetic import generate
from participant.personal import own_distribution, personalise


def test_the_personal_model_is_kept_only_when_it_beats_the_global_one_on_the_members_data() -> None:
    train, test = generate(4000, 0), generate(2000, 1)
    spec = ModelSpec.for_dataset(train, hidden=(32, 16))
    shared = train_local(spec, init_model(spec, 0), train, epochs=1, seed=1).weights  # a weak global model
    before = {k: v.copy() for k, v in shared.items()}
    member = train.subset(np.flatnonzero(train.labels <= 2))  # normal, dos and probe only
    mine, how = personalise(spec, shared, member, epochs=3, seed=4, absent_class_scale=1.0)
    assert all(np.array_equal(shared[k], before[k]) for k in shared)  # the global model is untouched
    g, p = how["validation_macro_f1"]["global"], how["validation_macro_f1"]["fine-tuned"]
    assert how["chosen"] == ("fine-tuned" if p >= g else "global") and how["validation_rows"] > 0
    own = own_distribution(test, member)
    assert set(np.unique(own.labels)) == {0, 1, 2} and len(own) < len(test)
    assert how["chosen"] == "fine-tuned" and any(not np.array_equal(mine[k], shared[k]) for k in shared)
    # on the member's own distribution the fine-tuned model does better than the weak global one
    assert evaluate(mine, spec, own)["macro_f1"] > evaluate(shared, spec, own)["macro_f1"] + 0.2
    # a fine-tuning that goes wrong (a step far too large) is caught on the validation share: the global model stays
    strong = train_local(spec, init_model(spec, 0), train, epochs=6, seed=1).weights
    kept, how = personalise(spec, strong, member, epochs=2, seed=4, lr=5.0, absent_class_scale=1.0)
    assert how["chosen"] == "global" and kept is strong
    with pytest.raises(ValueError, match="validation"):
        personalise(spec, shared, member, epochs=1, seed=0, validation=1.5)


def test_personalising_changes_no_update_and_no_global_model() -> None:
    small = dict(dataset="synthetic", synthetic_records=3000, participants=3, rounds=2, hidden=(32, 16), seed=1, split="families")
    plain = run_simulation(SimulationConfig(**small))  # type: ignore[arg-type]
    personal = run_simulation(SimulationConfig(**small, personal_epochs=2, baselines=True))  # type: ignore[arg-type]
    # the same update bytes and global models round by round: the personal models entered no update
    for a, b in zip(plain["rounds"], personal["rounds"], strict=True):
        assert a["model_digest"] == b["model_digest"] and a["update_bytes"] == b["update_bytes"]
    assert "personal" not in plain
    rows = personal["personal"]
    assert [r["address"] for r in rows] == [p["address"] for p in personal["participants"]]
    for r in rows:
        assert r["own_test_rows"] > 0 and {"global", "personalised", "local_only", "choice"} <= set(r)
        if r["choice"]["chosen"] == "global":
            assert r["personalised"] == r["global"]
