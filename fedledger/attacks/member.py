"""Planted attackers as members: the update an attacking member sends, and a participant service that sends it.

Used by the demo (each planted attacker is a real participant process, started with
``python -m fedledger.attacks.member``), by ``fedledger simulate --attack`` and by the
attack harness. A planted member deviates from the honest path of
:mod:`participant.update` where its attack says:

* ``label-flip`` trains honestly on relabelled flows;
* poisoners (``sign-flip``, ``scale10``, ``scale100``, ``same-value``) train, then
  replace the delta before encoding it;
* copiers and free-riders do not train at all: they re-send another member's payload
  under their own header, or invent one. Members commit to their updates before any of
  them is readable, so a copier in a real round can only replay another member's update
  of the previous round (which the round's replay check flags as ``copy-stale``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping

import numpy as np

from federation.model import ModelSpec
from federation.updates import UpdateHeader, decode_update, encode_update
from fedledger.attacks.kinds import (
    ATTACKS,
    COPY,
    FREE_RIDE,
    InvalidAttack,
    attack_delta,
    copy_update,
    flip_labels,
    poison_delta,
)
from flows import FlowDataset
from ipfs import digest_to_cid
from participant.budget import PrivacyAccount
from participant.compression import ErrorFeedback
from participant.service import ParticipantService
from participant.update import (
    ProducedUpdate,
    RoundTask,
    Trained,
    TrainingSettings,
    encode_round,
    produce_update,
    train_round,
)


def attacked_update(
    kind: str,
    task: RoundTask,
    spec: ModelSpec,
    base_weights: Mapping[str, np.ndarray],
    data: FlowDataset,
    settings: TrainingSettings,
    *,
    victim: bytes | None,
    noise_seed: int,
    feedback: ErrorFeedback | None = None,
    privacy: PrivacyAccount | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ProducedUpdate:
    """The update a member planted with ``kind`` sends; ``victim`` is an earlier update of the round (copiers)."""
    if kind not in ATTACKS:
        raise InvalidAttack(f"unknown attack {kind!r}", hint=f"use one of {', '.join(ATTACKS)}")
    if kind == "label-flip":
        return produce_update(task, spec, base_weights, flip_labels(data), settings, feedback=feedback, privacy=privacy,
                              progress=progress)  # fmt: skip
    if kind in COPY or kind in FREE_RIDE:
        header = UpdateHeader(task.participant, task.round_id, task.base_digest.hex(), spec.digest(), len(data), 0, settings.codec,
                              chain_id=task.chain_id, ledger=task.ledger)  # fmt: skip
        trained = Trained({}, len(data))
        if kind == "copy" and victim is not None:
            return ProducedUpdate(copy_update(victim, header, spec), header, trained, feedback)
        decoded = decode_update(victim, spec)[1] if victim is not None else None
        fake = attack_delta(kind, train=lambda _d: {}, data=data, shapes=spec.tensor_shapes(), victim=decoded,
                            seed=noise_seed, address=task.participant, round_id=task.round_id)  # fmt: skip
        return ProducedUpdate(encode_update(header, fake, spec), header, Trained(fake, len(data)), feedback)
    trained = train_round(task, spec, base_weights, data, settings, privacy=privacy, progress=progress)
    trained.delta = poison_delta(kind, trained.delta)
    blob, header, after = encode_round(task, spec, trained, settings, feedback)
    return ProducedUpdate(blob, header, trained, after)


class AttackingParticipant(ParticipantService):
    """A participant process that attacks on purpose (demos and tests of the federation's defences)."""

    def __init__(self, *args, attack: str, **kwargs) -> None:  # noqa: ANN002, ANN003
        if attack not in ATTACKS:
            raise InvalidAttack(f"unknown attack {attack!r}", hint=f"use one of {', '.join(ATTACKS)}")
        super().__init__(*args, **kwargs)
        self.attack = attack

    def make_update(self, task: RoundTask, base_weights: dict, deadline: int) -> ProducedUpdate:
        kind = self.attack
        victim = self._last_rounds_update(task.round_id) if kind in COPY else None
        if kind in COPY and victim is None:
            kind = "free-ride"  # nothing to copy yet (the first round): it sends the base unchanged instead
        return attacked_update(
            kind, task, self.descriptor.spec, base_weights, self.data, self.settings, victim=victim,
            noise_seed=self.descriptor.seed, feedback=self._error_feedback(), privacy=self.privacy,
            progress=self._on_progress,
        )  # fmt: skip

    def _last_rounds_update(self, round_id: int) -> bytes | None:
        """Another member's update of the round this one builds on: the only bytes a copier can read in time."""
        from federation.manifest import Manifest

        base_round = self.ledger.round_phases(round_id).base_round
        if not base_round:
            return None
        info = self.ledger.get_round(base_round)
        manifest = Manifest.parse(self.store.get(digest_to_cid(info.manifest)))
        for entry in manifest.submissions:  # an update that went into the model: real work worth copying
            if entry.participant in manifest.aggregation_order and entry.participant.lower() != self.address.lower():
                return self.store.get(entry.update)
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m fedledger.attacks.member --attack KIND <participant run options>``: an attacking member process."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        i = args.index("--attack")
        kind = args[i + 1]
    except (ValueError, IndexError):
        print("usage: python -m fedledger.attacks.member --attack KIND [fedledger participant run options]", file=sys.stderr)
        return 2
    del args[i : i + 2]
    from fedledger.cli import main as cli_main
    from fedledger.cli import participant_cmd

    participant_cmd.PARTICIPANT_SERVICE = lambda *a, **kw: AttackingParticipant(*a, attack=kind, **kw)  # type: ignore[assignment]
    return cli_main(["participant", "run", *args])


__all__ = ["AttackingParticipant", "attacked_update", "main"]

if __name__ == "__main__":
    sys.exit(main())
