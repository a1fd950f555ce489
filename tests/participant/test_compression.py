"""Error feedback: the participant-side residual of the lossy codec."""

from __future__ import annotations

import numpy as np
import pytest

from federation.model import ModelSpec
from federation.updates import CodecParams, UpdateHeader, decode_update
from participant.compression import ErrorFeedback, ErrorFeedbackStateError

SPEC = ModelSpec("test/v1", 10, (16,), ("normal", "dos", "probe"))


def _header(codec: CodecParams, round_id: int = 1) -> UpdateHeader:
    return UpdateHeader("0x" + "01" * 20, round_id, "ab" * 32, SPEC.digest(), 50, 0, codec)


def _delta(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in SPEC.tensor_shapes().items()}


def test_residual_is_exactly_what_the_encoding_lost() -> None:
    ef = ErrorFeedback(SPEC)
    codec = CodecParams(topk=0.1, quant="int8")
    d1, d2 = _delta(1), _delta(2)
    _, sent1 = decode_update(ef.encode(_header(codec, 1), d1), SPEC)
    assert all(np.array_equal(ef.residual[k], d1[k] - sent1[k]) for k in d1)
    r1 = {k: v.copy() for k, v in ef.residual.items()}
    _, sent2 = decode_update(ef.encode(_header(codec, 2), d2), SPEC)
    assert all(np.array_equal(ef.residual[k], (d2[k] + r1[k]) - sent2[k]) for k in d2)


def test_error_feedback_eventually_sends_every_coordinate() -> None:
    """Sending the same delta R times: with feedback the total sent approaches R * delta; without, it does not."""
    codec = CodecParams(topk=0.05, quant="int8")
    delta = _delta(3)
    rounds = 300
    errors = {}
    for use_feedback in (True, False):
        ef = ErrorFeedback(SPEC)
        total = {k: np.zeros_like(v) for k, v in delta.items()}
        for r in range(rounds):
            if not use_feedback:
                ef.reset()
            _, sent = decode_update(ef.encode(_header(codec, r + 1), delta), SPEC)
            for k in total:
                total[k] += sent[k]
        errors[use_feedback] = max(float(np.abs(total[k] / rounds - delta[k]).max()) for k in delta)
    assert errors[True] < 0.1
    assert errors[False] > 0.5


def test_lossless_codec_leaves_no_residual() -> None:
    ef = ErrorFeedback(SPEC)
    ef.encode(_header(CodecParams()), _delta(4))
    assert ef.residual_norm() == 0.0


def test_state_survives_a_restart(tmp_path) -> None:
    ef = ErrorFeedback(SPEC)
    ef.encode(_header(CodecParams(topk=0.2, quant="int8")), _delta(5))
    assert ef.residual_norm() > 0
    path = tmp_path / "ef.safetensors"
    ef.save(path)
    again = ErrorFeedback.load(path, SPEC)
    assert all(np.array_equal(again.residual[k], ef.residual[k]) for k in ef.residual)
    # Restarted and uninterrupted participants produce the same next update.
    h = _header(CodecParams(topk=0.2, quant="int8"), 2)
    assert again.encode(h, _delta(6)) == ef.encode(h, _delta(6))
    assert ErrorFeedback.load(tmp_path / "missing", SPEC).residual_norm() == 0.0


def test_bad_state_files_are_rejected_and_a_residual_of_another_model_or_context_is_dropped(tmp_path) -> None:
    ef = ErrorFeedback(SPEC, {k: np.ones(s, np.float32) for k, s in SPEC.tensor_shapes().items()}, context="fed-a:plain")
    path = tmp_path / "ef"
    ef.save(path)
    assert path.stat().st_mode & 0o777 == 0o600  # a function of private flows: the owner's alone
    assert ErrorFeedback.load(path, SPEC, "fed-a:plain").residual_norm() > 0
    # Another model, another federation or another mode: nothing of the residual is carried over.
    other = ModelSpec("test/v1", 10, (17,), ("normal", "dos", "probe"))
    assert ErrorFeedback.load(path, other).residual_norm() == 0
    assert ErrorFeedback.load(path, SPEC, "fed-b:plain").residual_norm() == 0
    assert ErrorFeedback.load(path, SPEC, "fed-a:dp-record").residual_norm() == 0
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ErrorFeedbackStateError, match="corrupt") as err:
        ErrorFeedback.load(path, SPEC)
    assert err.value.hint
    with pytest.raises(ErrorFeedbackStateError):
        ErrorFeedback(SPEC, {"x": np.zeros(3, np.float32)})
