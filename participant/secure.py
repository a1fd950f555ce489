"""A member in a secure-aggregation federation: share, mask and commit, reveal, round by round.

The participant service hands a round to :class:`SecureMember` when the federation's
descriptor names ``secure-aggregation``. Each call of :meth:`SecureMember.step` does what
the round needs from this member now, and every step is idempotent across restarts (the
chain says what landed; the member's private files say what it made):

1. bind the member's X25519 key on chain (once; a key bound after a round opened counts
   from the next round);
2. **share phase**: check the base model (re-derive the round that made it), draw fresh round
   secrets, deal signed, encrypted shares of them to every member of the round, put the
   bundle in the store and its digest on chain;
3. **once the share phase closes**: train, clip and quantise the update, mask it with every
   peer that shared a valid bundle, keep the masked bytes privately and commit their digest;
4. **once submissions close**: put the masked bytes in the store; when every committed
   member's masked update is in (or the reveal window has passed), reveal one share per
   peer: of its seed if its masked update is in, of its mask key if not.

The round secrets are kept 0600 until the round is over, then deleted: with a member's mask
key and its self-mask seed, its masked update would be its update in the clear.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from contracts.client import RoundState
from contracts.errors import (
    AlreadyPublished,
    LedgerRevert,
    RoundNotOpen,
    SharePhaseClosed,
    SubmissionsStillOpen,
)
from contracts.history import secure_round_bundles, submissions_closed_at
from faults import Deadline
from federation.fetch import fetch_update, update_limit
from federation.secagg import (
    InvalidBundle,
    RoundSecrets,
    SecureParams,
    SecureRound,
    ShareBundle,
    check_bundle,
    deal,
    encode_masked,
    mask_vector,
    quantise_update,
    reveal,
)
from federation.secagg.shares import MAX_BUNDLE_BYTES
from federation.secagg.unmask import MaskedSubmission, judge_masked
from federation.updates import UpdateHeader
from ipfs import StoreError, cid_to_digest, digest_to_cid
from participant.statefiles import write_private
from participant.update import ProducedUpdate, RoundTask, train_round

if TYPE_CHECKING:
    from participant.service import ParticipantService, Submitted

log = logging.getLogger("fedledger.participant")


def load_member_key(path) -> X25519PrivateKey:  # noqa: ANN001
    """The member's X25519 key for this federation, made (0600) on first use."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, X25519PrivateKey):
            raise ValueError(f"{path} does not hold an X25519 key")
        return key
    key = X25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private(path, pem)
    return key


class SecureMember:
    """The secure-aggregation side of one participant service."""

    def __init__(self, service: ParticipantService) -> None:
        self.s = service
        self.params = SecureParams.from_privacy(service.descriptor.privacy)
        self.key = load_member_key(service.fed_dir / "member-key.pem")
        self.public = self.key.public_key().public_bytes_raw()
        self._rounds: dict[int, SecureRound] = {}
        self._peers: dict[int, dict[str, ShareBundle]] = {}
        self._noted: set[tuple[int, str]] = set()

    # -- private files -------------------------------------------------------------------
    def _path(self, round_id: int, kind: str):  # noqa: ANN202
        return self.s._pending_path(round_id, kind)

    def _secrets(self, round_id: int) -> RoundSecrets:
        path = self._path(round_id, "secrets")
        if path.exists():
            return RoundSecrets.from_bytes(path.read_bytes())
        secrets = RoundSecrets.fresh()
        write_private(path, secrets.to_bytes())
        return secrets

    def forget(self, round_id: int) -> None:
        """Delete a finished round's secrets (the masked update and bundles may stay: they reveal nothing)."""
        self._path(round_id, "secrets").unlink(missing_ok=True)

    def _note(self, round_id: int, what: str, message: str) -> None:
        if (round_id, what) not in self._noted:
            self._noted.add((round_id, what))
            log.info("round %d: %s", round_id, message)

    # -- chain state ---------------------------------------------------------------------
    def bind_key(self) -> bool:
        """Bind this member's X25519 key on chain unless it already is; True when a transaction was sent."""
        if self.s.ledger.member_key(self.s.address) == self.public:
            return False
        tx = self.s.ledger.set_member_key(self.public)
        self.s._on_event("key-bound", {"key": self.public.hex(), "gas": tx.gas_used})
        log.info("bound this member's X25519 key %s on chain", self.public.hex()[:16])
        return True

    def round(self, round_id: int) -> SecureRound:
        if round_id not in self._rounds:
            self._rounds[round_id] = self.s.replay.secure_round(round_id)
        return self._rounds[round_id]

    # -- one step ------------------------------------------------------------------------
    def step(self, round_id: int, info, phases) -> Submitted | None:  # noqa: ANN001
        for old in [r for r in self._rounds if r < round_id]:
            self.forget(old)
            self._rounds.pop(old, None)
            self._peers.pop(old, None)
        self.bind_key()
        rnd = self.round(round_id)
        me = self.s.address
        if me not in rnd.member_keys:
            self._note(round_id, "no-key", "this member's key was not bound when the round opened; it takes part from the next")
            return None
        shares, reveals = secure_round_bundles(self.s.ledger, round_id)
        now = self.s.ledger.now()
        share_closed = now >= phases.share_deadline or phases.share_count >= phases.eligible
        if me not in shares:
            if share_closed:
                self._note(round_id, "late", "the share phase closed before this member shared; it sits this round out")
                return None
            self._share(rnd, info, phases)
            return None
        mine = self.s.ledger.get_submission(round_id, me)
        if mine is None:
            if not share_closed or phases.submissions_closed or now >= info.deadline - self.s.settings.deadline_margin:
                return None
            peers = self._valid_peers(rnd, shares)
            if peers is None:
                return None  # a sharer's bundle is not fetchable yet: try again
            if len(peers) < self.params.threshold:
                from participant.service import RoundMissed

                raise RoundMissed(f"round {round_id}: {len(peers)} members shared valid bundles, fewer than the threshold "
                                  f"of {self.params.threshold}; the round cannot be unmasked")  # fmt: skip
            self._peers[round_id] = peers
            return self.s._take_part(round_id, info.base_model, phases.base_round, info.deadline)
        if not phases.submissions_closed:
            return None
        self.s.reveal(round_id, mine.update)
        if me not in reveals:
            self._reveal_shares(rnd, info, shares)
        return None

    def _share(self, rnd: SecureRound, info, phases) -> None:  # noqa: ANN001
        """Check the base, then deal and publish this round's shares."""
        from participant.service import RoundMissed

        if self.s.verify_base:
            self.s.verify(phases.base_round, info.base_model)
        path = self._path(rnd.round_id, "shares")
        if path.exists():
            data = path.read_bytes()
        else:
            bundle = deal(rnd, self.s.address, self._secrets(rnd.round_id), self.key, self.s.ledger.sign_digest)
            data = bundle.to_bytes()
            write_private(path, data)  # kept before publishing: a restart publishes these bytes, never new ones
        cid = self.s.store.put(data)
        self.s.store.pin(cid)
        try:
            tx = self.s.ledger.publish_shares(rnd.round_id, cid_to_digest(cid))
        except AlreadyPublished:
            return
        except (SharePhaseClosed, RoundNotOpen) as exc:
            raise RoundMissed(f"round {rnd.round_id}: the share phase closed before the shares landed: {exc}") from None
        self.s._on_event("shared", {"round": rnd.round_id, "cid": cid, "bytes": len(data), "gas": tx.gas_used})
        log.info("round %d: shared %s (%d members, threshold %d)", rnd.round_id, cid, len(rnd.members), self.params.threshold)

    def _valid_peers(self, rnd: SecureRound, shares: dict[str, bytes]) -> dict[str, ShareBundle] | None:
        """Every sharer's bundle the protocol accepts (the peers to mask with); None while one cannot be fetched."""
        if rnd.round_id in self._peers:
            return self._peers[rnd.round_id]
        peers = {}
        for sender, digest in shares.items():
            try:
                data = self.s.store.get(digest_to_cid(digest), max_bytes=MAX_BUNDLE_BYTES)
            except StoreError as exc:
                self._note(rnd.round_id, f"bundle-{sender}", f"the share bundle of {sender} is not fetchable yet ({exc})")
                return None
            try:
                peers[sender] = check_bundle(rnd, sender, data)
            except InvalidBundle as exc:
                log.warning("round %d: %s's share bundle is refused: %s", rnd.round_id, sender, exc)
        return peers

    # -- the update ----------------------------------------------------------------------
    def make_update(self, task: RoundTask, base_weights: dict) -> ProducedUpdate:
        """Train, clip and quantise, mask with every peer: the masked update this member commits to."""
        s, spec = self.s, self.s.descriptor.spec
        rnd, peers = self.round(task.round_id), self._peers[task.round_id]
        trained = train_round(task, spec, base_weights, s.data, s.settings, privacy=s.privacy, progress=s._on_progress)
        values = quantise_update(trained.delta, spec, trained.num_samples, self.params)
        masked = mask_vector(rnd, s.address, self._secrets(task.round_id), values, peers)
        header = UpdateHeader(
            participant=s.address, round_id=task.round_id, base_model=task.base_digest.hex(), spec_digest=spec.digest(),
            num_samples=trained.num_samples, epsilon_milli=trained.epsilon_milli, dp=trained.mechanism,
            chain_id=task.chain_id, ledger=task.ledger, masked=True,
        )  # fmt: skip
        return ProducedUpdate(encode_masked(header, masked), header, trained, None)

    # -- reveal --------------------------------------------------------------------------
    def _reveal_shares(self, rnd: SecureRound, info, shares: dict[str, bytes]) -> None:  # noqa: ANN001
        """Once every committed masked update is in (or the reveal window has passed), reveal one share per peer."""
        from participant.service import ParticipantError

        peers = self._valid_peers(rnd, shares)
        if peers is None:
            return
        ledger = self.s.ledger
        subs = ledger.submissions(rnd.round_id)
        window_over = ledger.now() >= submissions_closed_at(ledger, rnd.round_id) + self.s.descriptor.reveal_seconds
        base_hex = info.base_model.hex()
        limit = update_limit(self.s.descriptor)
        masked_in: set[str] = set()
        fetched: dict[str, bytes] = {}
        for sub in subs:
            if sub.participant not in peers or sub.participant == self.s.address:
                continue
            # A short wait each: until the window has passed, a missing update means "look again later".
            data, _ = fetch_update(self.s.store, digest_to_cid(sub.update), max_bytes=limit,
                                   until=Deadline.after(5.0 if window_over else 0.5))  # fmt: skip
            if data is None and not window_over:
                self._note(rnd.round_id, "waiting", "waiting for every committed masked update before revealing shares")
                return
            if data is not None:
                fetched[sub.participant] = data
        for sub in subs:
            if sub.participant == self.s.address and sub.participant in peers:
                masked_in.add(sub.participant)
            data = fetched.get(sub.participant)
            if data is None:
                continue
            judged = judge_masked(data, rnd, self.s.descriptor.spec,
                                  MaskedSubmission(sub.participant, sub.num_samples, sub.epsilon_milli, data), base_hex)  # fmt: skip
            if judged.words is not None:
                masked_in.add(sub.participant)
            else:
                log.warning("round %d: %s's masked update is refused (%s): revealing its key share", rnd.round_id,
                            sub.participant, judged.reason)  # fmt: skip
        path = self._path(rnd.round_id, "reveal")
        if path.exists():
            data = path.read_bytes()
        else:
            data = reveal(rnd, self.s.address, self.key, peers, masked_in).to_bytes()
            write_private(path, data)
        cid = self.s.store.put(data)
        self.s.store.pin(cid)
        try:
            tx = ledger.reveal_shares(rnd.round_id, cid_to_digest(cid))
        except (AlreadyPublished, RoundNotOpen):
            return
        except SubmissionsStillOpen:
            return
        except LedgerRevert as exc:
            raise ParticipantError(f"round {rnd.round_id}: revealing shares was refused: {exc}", hint=exc.hint) from None
        self.s._on_event("revealed-shares", {"round": rnd.round_id, "cid": cid, "in": len(masked_in), "gas": tx.gas_used})
        log.info("round %d: revealed shares %s (%d masked updates in)", rnd.round_id, cid, len(masked_in))
        if ledger.get_round(rnd.round_id).state != RoundState.OPEN:
            self.forget(rnd.round_id)


__all__ = ["SecureMember", "load_member_key"]
