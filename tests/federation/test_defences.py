"""Copy and free-rider detection on real trained updates, and the attacks that plant them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from federation.metrics import evaluate
from federation.model import model_digest, save_model_bytes
from federation.rounds.defences import (
    Candidate,
    DefenceParams,
    InvalidDefenceParams,
    detect,
)
from federation.updates import UpdateHeader, decode_update, encode_update
from fedledger.attacks.kinds import (
    ATTACKS,
    AttackSpec,
    InvalidAttack,
    copy_delta,
    copy_update,
    flip_labels,
    free_ride_delta,
    plant,
    poison_delta,
)
from tests.helpers.defences import address, honest_round


def _cand(addr: str, delta, digest: bytes | None = None) -> Candidate:  # type: ignore[no-untyped-def]
    raw = b"".join(np.asarray(delta[k], np.float32).tobytes() for k in sorted(delta))
    return Candidate(addr, digest or hashlib.sha256(addr.encode() + raw).digest(), delta)


def _gain(rnd):  # type: ignore[no-untyped-def]
    base_metric = evaluate(rnd.base, rnd.spec, rnd.validation)["macro_f1"]

    def gain(delta) -> float:  # type: ignore[no-untyped-def]
        w = {k: (rnd.base[k] + delta[k]).astype(np.float32) for k in rnd.base}
        return float(evaluate(w, rnd.spec, rnd.validation)["macro_f1"]) - float(base_metric)

    return gain


def _honest(rnd) -> list[Candidate]:  # type: ignore[no-untyped-def]
    return [_cand(a, d) for a, _, d in rnd.members]


def test_honest_members_are_never_flagged() -> None:
    for warm in (1, 3):
        rnd = honest_round(5, warm_rounds=warm)
        assert detect(_honest(rnd), gain=_gain(rnd)) == {}


@pytest.mark.parametrize("kind", ["copy", "copy-noise"])
def test_a_copy_is_flagged_and_the_original_is_not(kind: str) -> None:
    rnd = honest_round(5)
    victim = rnd.members[1]
    cands = _honest(rnd)
    copier = address(50)
    cands.append(_cand(copier, copy_delta(kind, victim[2], seed=0, address=copier, round_id=1)))
    flags = detect(cands, gain=_gain(rnd))
    assert set(flags) == {copier}
    assert flags[copier].reason == ("copy-payload" if kind == "copy" else "copy-similar")
    assert victim[0] in flags[copier].detail


def test_only_the_later_of_two_identical_updates_is_flagged() -> None:
    rnd = honest_round(5)
    first, second = address(60), address(61)
    d = rnd.members[0][2]
    cands = [_cand(second, d), *_honest(rnd)[1:], _cand(first, d)]  # on-chain order, not address order, decides
    flags = detect(cands)
    assert set(flags) == {first}


def test_the_same_bytes_twice_is_a_byte_copy() -> None:
    rnd = honest_round(5)
    cands = _honest(rnd)
    dup = Candidate(address(70), cands[2].digest, cands[2].delta)
    assert detect([*cands, dup])[address(70)].reason == "copy-bytes"


@pytest.mark.parametrize("kind, reason", [("free-ride", "free-ride-unchanged"), ("free-ride-noise", "free-ride-noise")])
def test_free_riders_are_flagged(kind: str, reason: str) -> None:
    rnd = honest_round(5)
    rider = address(80)
    delta = free_ride_delta(kind, rnd.spec.tensor_shapes(), seed=0, address=rider, round_id=1)
    cands = [_cand(rider, delta), *_honest(rnd)]  # even when it submits first
    flags = detect(cands, gain=_gain(rnd))
    assert set(flags) == {rider}
    assert flags[rider].reason == reason


def test_noise_check_needs_the_validation_gain() -> None:
    rnd = honest_round(5)
    rider = address(81)
    delta = free_ride_delta("free-ride-noise", rnd.spec.tensor_shapes(), seed=0, address=rider, round_id=1)
    assert detect([*_honest(rnd), _cand(rider, delta)]) == {}  # without gain, noise cannot be confirmed


def test_one_huge_update_does_not_make_the_others_look_like_noise() -> None:
    # Summed as they are, an update at 3e38 absorbs every other value in float arithmetic, and the
    # others' sum (total minus own) came out near zero: the huge one looked orthogonal to it and was
    # dropped as noise before the bounds could scale it. The check sums the others' directions.
    rnd = honest_round(5)
    cands = _honest(rnd)
    d = rnd.members[0][2]
    scale = np.float64(3e38 / max(float(np.max(np.abs(v))) for v in d.values()))
    cands[0] = _cand(cands[0].participant, {k: (v.astype(np.float64) * scale).astype(np.float32) for k, v in d.items()})
    assert max(float(np.max(np.abs(v))) for v in cands[0].delta.values()) > 1e38
    assert detect(cands, gain=_gain(rnd)) == {}
    rider = address(82)
    noise = free_ride_delta("free-ride-noise", rnd.spec.tensor_shapes(), seed=0, address=rider, round_id=1)
    flags = detect([*cands, _cand(rider, noise)], gain=_gain(rnd))
    assert set(flags) == {rider} and flags[rider].reason == "free-ride-noise"


def test_poisoners_are_not_mistaken_for_copiers_or_free_riders() -> None:
    rnd = honest_round(5)
    cands = _honest(rnd)
    for i, kind in enumerate(["sign-flip", "scale10", "scale100"]):  # each poisons its own trained update
        cands[i] = _cand(cands[i].participant, poison_delta(kind, rnd.members[i][2]))
    assert detect(cands, gain=_gain(rnd)) == {}
    # A scaled copy of someone else's update is still a copy.
    cands.append(_cand(address(95), poison_delta("scale10", rnd.members[4][2])))
    assert detect(cands, gain=_gain(rnd))[address(95)].reason == "copy-similar"


def test_detection_is_deterministic_and_names_numbers_exactly() -> None:
    rnd = honest_round(5)
    copier = address(51)
    cands = [*_honest(rnd), _cand(copier, copy_delta("copy-noise", rnd.members[0][2], seed=3, address=copier, round_id=2))]
    a, b = detect(cands), detect(list(cands))
    assert a == b and a[copier].detail.startswith("cosine 0.99")


def test_defence_params_are_checked() -> None:
    with pytest.raises(InvalidDefenceParams, match="copy_cosine"):
        DefenceParams(copy_cosine=1.5)
    with pytest.raises(InvalidDefenceParams, match="unknown defence parameters"):
        DefenceParams.from_dict({"copy_cos": 0.9})
    assert DefenceParams.from_dict({"copy_cosine": 0.95}).to_dict()["copy_cosine"] == 0.95
    # A strict threshold makes honest IID updates look like copies: the parameter really decides.
    rnd = honest_round(5)
    assert detect(_honest(rnd), DefenceParams(copy_cosine=0.5)) != {}


# --- attacks ---------------------------------------------------------------------------------------


def test_attack_specs_parse_and_refuse_nonsense() -> None:
    assert AttackSpec.parse("sign-flip:2") == AttackSpec("sign-flip", 2)
    assert AttackSpec.parse("Copy") == AttackSpec("copy", 1)
    for bad, fragment in [("flip:1", "unknown attack"), ("copy:x", "not an integer"), ("copy:0", ">= 1")]:
        with pytest.raises(InvalidAttack, match=fragment):
            AttackSpec.parse(bad)
    assert set(ATTACKS) >= {"label-flip", "sign-flip", "scale10", "scale100", "same-value", "copy", "free-ride"}


def test_plant_is_deterministic_and_keeps_an_honest_member() -> None:
    addrs = [address(i) for i in range(10)]
    specs = [AttackSpec("sign-flip", 2), AttackSpec("copy", 1)]
    planted = plant(addrs, specs, seed=4)
    assert planted == plant(list(reversed(addrs)), specs, seed=4)
    assert sorted(planted.values()) == ["copy", "sign-flip", "sign-flip"]
    assert planted != plant(addrs, specs, seed=5)
    with pytest.raises(InvalidAttack, match="no honest member"):
        plant(addrs[:3], [AttackSpec("scale10", 3)], seed=0)


def test_poison_transforms() -> None:
    d = {"w": np.array([1.0, -2.0], np.float32)}
    assert poison_delta("sign-flip", d)["w"].tolist() == [-1.0, 2.0]
    assert poison_delta("scale10", d)["w"].tolist() == [10.0, -20.0]
    assert poison_delta("scale100", d)["w"].tolist() == [100.0, -200.0]
    assert poison_delta("same-value", d)["w"].tolist() == [1.0, 1.0]
    with pytest.raises(InvalidAttack):
        poison_delta("copy", d)


def test_label_flip_relabels_every_row() -> None:
    rnd = honest_round(5)
    data = rnd.train.subset(rnd.parts[0])
    flipped = flip_labels(data)
    assert np.array_equal(flipped.labels == 0, data.labels != 0)
    assert np.array_equal(flipped.features, data.features)


def test_copy_update_resends_the_payload_under_the_copiers_header() -> None:
    rnd = honest_round(5)
    base_digest = model_digest(save_model_bytes(rnd.spec, rnd.base))
    victim_addr, n, delta = rnd.members[0]
    victim = encode_update(UpdateHeader(victim_addr, 3, base_digest, rnd.spec.digest(), n), delta, rnd.spec)
    mine = UpdateHeader(address(55), 3, base_digest, rnd.spec.digest(), 10)
    blob = copy_update(victim, mine, rnd.spec)
    header, got = decode_update(blob, rnd.spec)
    assert header.participant.lower() == address(55) and blob != victim
    assert blob[mine.size :] == victim[mine.size :]  # the very same compressed tensor payload
    flags = detect([_cand(victim_addr, delta), _cand(address(55), got)])
    assert flags[header.participant if header.participant in flags else address(55)].reason == "copy-payload"
