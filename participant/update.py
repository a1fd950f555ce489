"""One member's update for one round: base model and local flows in, encoded update bytes out.

This is the one place an update is made. The participant service calls it for the
round the chain has open; the learning-only simulation and the attack harness call it
for every simulated member, so what they measure is what a real member would send.

It runs in two steps, both public, because planted attackers (which live with the
attacks, never here) deviate between them: :func:`train_round` (plain or DP training)
and :func:`encode_round` (the header that binds the round, the codec, error feedback).
:func:`produce_update` is the two in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from federation import recipe
from federation.model import ModelSpec
from federation.privacy import Mechanism
from federation.training import train_local
from federation.updates import NO_LEDGER, CodecParams, UpdateHeader, encode_update
from flows import FlowDataset
from participant.budget import PrivacyAccount
from participant.compression import ErrorFeedback
from participant.dp_training import DPConfig, train_local_dp


@dataclass(frozen=True)
class TrainingSettings:
    """How a member trains and encodes its updates (the same for every round)."""

    epochs: int = recipe.EPOCHS
    batch_size: int = recipe.BATCH_SIZE
    lr: float = recipe.LR
    mu: float = 0.0  # FedProx proximal coefficient
    absent_class_scale: float = recipe.ABSENT_CLASS_SCALE  # FedRS (1 = off, 0 = fully restricted)
    codec: CodecParams = field(default_factory=lambda: CodecParams(quant="int8", block=256))
    dp: DPConfig | None = None  # record- or client-level differential privacy; None = no DP
    class_weights: str | None = recipe.CLASS_WEIGHTS  # "balanced", "sqrt" or None (never used under DP)
    optimizer: str = "adam"
    error_feedback: bool = True  # carry what the codec drops into the next round
    # DP noise and sampling come from os.urandom; only a simulation fixes them, to repeat a run.
    noise_seed: int | None = None
    # Stop training a round this many seconds before its deadline: the submission must be mined in time.
    deadline_margin: float = 2.0
    logit_calibration: float = recipe.LOGIT_CALIBRATION  # FedLC's tau (0 = off)
    # Personalisation (participant.personal): fine-tune every global model this many epochs on the
    # local data and keep it in the state directory; it never enters an update (0 = off).
    personal_epochs: int = 0


@dataclass(frozen=True)
class RoundTask:
    """What the chain says a member trains for: the round, who it is, the base model's on-chain digest."""

    round_id: int
    participant: str
    base_digest: bytes  # the 32-byte digest the chain records for the base model
    seed: int  # the training seed of this member in this round (without DP, training is deterministic)
    chain_id: int = 0
    ledger: str = NO_LEDGER


@dataclass
class Trained:
    """A round's local training outcome, before encoding."""

    delta: dict[str, np.ndarray]
    num_samples: int
    metrics: dict[str, Any] = field(default_factory=dict)
    mechanism: Mechanism | None = None  # the DP mechanism the delta was released under
    epsilon_milli: int = 0
    privacy: dict[str, Any] | None = None  # this round's spend and the composed total (DP only)


@dataclass
class ProducedUpdate:
    """The encoded update and what the member keeps."""

    blob: bytes
    header: UpdateHeader
    trained: Trained
    # The error-feedback residual after this update; the caller commits it once the update is on chain.
    feedback: ErrorFeedback | None = None


def train_round(
    task: RoundTask,
    spec: ModelSpec,
    base_weights: Mapping[str, np.ndarray],
    data: FlowDataset,
    settings: TrainingSettings,
    *,
    privacy: PrivacyAccount | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Trained:
    """Train from the base model on local flows: plain (FedProx, FedRS, class weights) or under DP."""
    s = settings
    if s.dp is None:
        local = train_local(
            spec, base_weights, data, epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, mu=s.mu, seed=task.seed,
            class_weights=s.class_weights, optimizer=s.optimizer, absent_class_scale=s.absent_class_scale,  # type: ignore[arg-type]
            logit_calibration=s.logit_calibration, progress=progress,
        )  # fmt: skip
        return Trained(local.delta, local.num_samples, dict(local.metrics))
    # Budget and settings are checked before any training: a refused round leaves nothing behind.
    result = train_local_dp(
        spec, base_weights, data, s.dp, account=privacy, round_id=task.round_id, epochs=s.epochs,
        batch_size=s.batch_size, lr=s.lr, seed=task.seed, optimizer=s.optimizer, progress=progress,  # type: ignore[arg-type]
        noise_seed=s.noise_seed,
    )  # fmt: skip
    return Trained(
        result.delta, result.num_samples, dict(result.metrics), result.mechanism, result.epsilon_milli, dict(result.privacy)
    )


def encode_round(
    task: RoundTask,
    spec: ModelSpec,
    trained: Trained,
    settings: TrainingSettings,
    feedback: ErrorFeedback | None = None,
) -> tuple[bytes, UpdateHeader, ErrorFeedback | None]:
    """The update bytes: a header binding the member, round, base, samples and privacy spend, then the payload.

    With ``feedback`` (and ``settings.error_feedback``) the carried residual is added
    before encoding and what the codec drops becomes the new residual, returned as a
    new object: ``feedback`` itself is left as it was, so nothing moves on until the
    caller commits.
    """
    header = UpdateHeader(
        participant=task.participant, round_id=task.round_id, base_model=task.base_digest.hex(),
        spec_digest=spec.digest(), num_samples=trained.num_samples, epsilon_milli=trained.epsilon_milli,
        codec=settings.codec, dp=trained.mechanism, chain_id=task.chain_id, ledger=task.ledger,
    )  # fmt: skip
    if feedback is None:
        return encode_update(header, trained.delta, spec), header, None
    ef = feedback.copy() if settings.error_feedback else ErrorFeedback(spec, context=feedback.context)
    blob = ef.encode(header, trained.delta)
    return blob, header, ef


def produce_update(
    task: RoundTask,
    spec: ModelSpec,
    base_weights: Mapping[str, np.ndarray],
    data: FlowDataset,
    settings: TrainingSettings,
    *,
    feedback: ErrorFeedback | None = None,
    privacy: PrivacyAccount | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProducedUpdate:
    """Train, then encode: the update a member sends for ``task`` (deterministic without DP)."""
    trained = train_round(task, spec, base_weights, data, settings, privacy=privacy, progress=progress)
    blob, header, after = encode_round(task, spec, trained, settings, feedback)
    return ProducedUpdate(blob, header, trained, after)
