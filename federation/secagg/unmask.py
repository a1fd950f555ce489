"""Removing the masks: from the chain's member sets and the store's bundles and vectors to the sum, or a named reason.

The coordinator runs this to finalise a secure round and every auditor runs it again: it
needs nothing but what the chain and the store hold, and learns the sum and nothing more.
Which members are in the sum is decided by the revealed shares, deterministically:

* a member that committed a masked vector is **in** when at least t members revealed a
  share of its seed (its self mask is then removed), and **left out** when at least t
  revealed a share of its mask key (its pairwise masks are then removed from the others);
* a member that shared but did not commit (it dropped) must have t shares of its mask key
  revealed, so its pairwise masks can be removed;
* anything else (fewer than t shares of either) cannot be unmasked: the round waits for more
  reveals, or is aborted after its grace period.

Every share is checked against its dealer's signature and every reconstructed secret
against what its dealer committed to (the seed's hash, the mask key's public half), so a
bad share is named and attributed: to its dealer when the dealer signed it, to the revealer
when it did not. Finally the sum of the weights, a coordinate of the sum, must equal what
the chain's sample counts give exactly, and every coordinate must lie in the clip range:
a masked vector not made by the protocol is caught there (though not attributed: only the
sum is ever in the clear).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from faults import FedLedgerError
from federation.model import ModelSpec
from federation.rounds.validation import (
    Binding,
    header_problem,
    privacy_problem,
    privacy_record,
)
from federation.secagg.masked import decode_masked
from federation.secagg.prg import expand, pairwise_key, pairwise_sign, self_mask
from federation.secagg.protocol import SecureRound, check_bundle
from federation.secagg.quantise import clip_box_bound, signed, vector_length
from federation.secagg.shares import (
    KEY,
    SEED,
    InvalidBundle,
    RevealBundle,
    ShareBundle,
    by_address,
    reconstruct,
    seed_commitment,
)
from federation.updates import InvalidUpdate


@dataclass(frozen=True)
class Finding:
    """Something a party did that the protocol does not allow, attributed to it (or, for a complaint, claimed by another)."""

    party: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"party": self.party, "problem": self.problem}


@dataclass(frozen=True)
class MaskedSubmission:
    """A committed masked update as the round has it: bytes fetched in time, or why not."""

    participant: str
    num_samples: int
    epsilon_milli: int
    data: bytes | None
    reason: str | None = None  # why there are no bytes (unavailable, too-large, ...)


class UnmaskError(FedLedgerError):
    """The round's sum cannot be unmasked (yet) from what the chain and the store hold."""

    def __init__(self, message: str, findings: Sequence[Finding] = (), *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.findings = list(findings)


@dataclass
class Unmasked:
    total: np.ndarray  # the unmasked sum, d + 1 uint32 words
    survivors: list[str]  # in the sum, address order
    left_out: dict[str, str]  # committed but not in the sum -> why
    dropped: list[str]  # shared, never committed
    weight_q: dict[str, int]  # each survivor's quantised weight
    findings: list[Finding] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # every member of the round -> what became of it
    privacy: dict[str, dict] = field(default_factory=dict)  # survivors with a DP section -> its mechanism and epsilon


@dataclass(frozen=True)
class MaskedVerdict:
    """A committed masked update judged on its own: well-formed and bound to its chain record, or why not."""

    words: np.ndarray | None
    reason: str | None = None
    detail: str | None = None
    privacy: dict | None = None  # its declared DP mechanism and epsilon, when it has one


def judge_masked(data: bytes, rnd: SecureRound, spec: ModelSpec, sub: MaskedSubmission, base_hex: str) -> MaskedVerdict:
    """The checks every member makes before it reveals a seed share of ``sub``, and every auditor after."""
    try:
        header, words = decode_masked(data, spec)
    except InvalidUpdate as exc:
        return MaskedVerdict(None, exc.reason, str(exc))
    binding = Binding(rnd.chain_id, rnd.ledger, rnd.round_id, base_hex)
    problem = header_problem(header, binding, sub.participant, sub.num_samples, sub.epsilon_milli) or privacy_problem(header)
    if problem is not None:
        return MaskedVerdict(None, *problem)
    return MaskedVerdict(words, privacy=privacy_record(header))


def unmask(
    rnd: SecureRound,
    spec: ModelSpec,
    base_hex: str,
    bundles: Mapping[str, bytes | None],
    submissions: Sequence[MaskedSubmission],
    reveals: Mapping[str, bytes | None],
) -> Unmasked:
    """The round's unmasked sum; :class:`UnmaskError` (with its findings) when it cannot be had."""
    p, ctx, t = rnd.params, rnd.ctx, rnd.params.threshold
    findings: list[Finding] = []
    statuses: dict[str, str] = {m: "did not share" for m in rnd.members}

    # 1. Who shared a bundle the protocol accepts: the peers every member masked with.
    peers: dict[str, ShareBundle] = {}
    for sender in by_address(bundles):
        data = bundles[sender]
        if sender not in rnd.member_keys:
            findings.append(Finding(sender, "published shares without a key bound before the round opened"))
            continue
        if data is None:
            raise UnmaskError(f"the share bundle of {sender} cannot be fetched", findings,
                              hint="every member masked with it; it is needed to remove those masks")  # fmt: skip
        try:
            peers[sender] = check_bundle(rnd, sender, data)
            statuses[sender] = "shared"
        except InvalidBundle as exc:
            findings.append(Finding(sender, f"share bundle {exc}"))
            statuses[sender] = "invalid share bundle"
    if len(peers) < t:
        raise UnmaskError(f"{len(peers)} members shared valid bundles, fewer than the threshold of {t}", findings)

    # 2. The revealed shares, each checked against its dealer's signature.
    seeds: dict[str, dict[int, bytes]] = {m: {} for m in peers}
    keys: dict[str, dict[int, bytes]] = {m: {} for m in peers}
    for revealer in by_address(reveals):
        data = reveals[revealer]
        if data is None:
            continue  # not fetchable: its shares are simply not counted
        try:
            bundle = RevealBundle.parse(data)
            if (bundle.chain_id, bundle.ledger, bundle.round_id, bundle.sender) != (rnd.chain_id, rnd.ledger, rnd.round_id, revealer):
                raise InvalidBundle(f"is {bundle.sender}'s for round {bundle.round_id} of {bundle.ledger}")
        except InvalidBundle as exc:
            findings.append(Finding(revealer, f"reveal bundle {exc}"))
            continue
        if revealer not in rnd.member_keys:
            findings.append(Finding(revealer, "revealed shares but is not a member of the round"))
            continue
        index = rnd.index_of(revealer)
        for share in bundle.shares:
            if share.dealer not in peers:
                findings.append(Finding(revealer, f"revealed a share of {share.dealer}, which dealt none"))
            elif share.index != index or not share.verify(ctx):
                findings.append(Finding(revealer, f"revealed a {share.kind} share of {share.dealer} that {share.dealer} did not sign"))
            else:
                (seeds if share.kind == SEED else keys)[share.dealer][share.index] = share.value
        for dealer in bundle.complaints:
            findings.append(Finding(dealer, f"{revealer} reports that the share it was dealt does not decrypt or verify"))

    # 3. The committed masked vectors.
    committed = {s.participant: s for s in submissions}
    words: dict[str, np.ndarray] = {}
    privacy: dict[str, dict] = {}
    problems: dict[str, str] = {}
    for s in submissions:
        if s.participant not in peers:
            statuses[s.participant] = "committed without a valid share bundle"
            continue
        if s.data is None:
            problems[s.participant] = s.reason or "unavailable"
            continue
        judged = judge_masked(s.data, rnd, spec, s, base_hex)
        if judged.words is None:
            problems[s.participant] = f"{judged.reason}: {judged.detail}"
            findings.append(Finding(s.participant, f"masked update refused ({judged.reason}): {judged.detail}"))
        else:
            words[s.participant] = judged.words
            if judged.privacy is not None:
                privacy[s.participant] = judged.privacy

    # 4. Who is in the sum, decided by the revealed shares.
    survivors, left_out, dropped, stuck = [], {}, [], []
    for m in by_address(peers):
        n_seed, n_key = len(seeds[m]), len(keys[m])
        if m in committed and n_seed >= t:
            if m not in words:
                stuck.append(f"{m}'s seed was revealed but its masked update is not usable ({problems.get(m, 'unavailable')})")
            survivors.append(m)
        elif n_key >= t:
            if m in committed:
                left_out[m] = problems.get(m, "its masked update was not in when the shares were revealed")
                statuses[m] = f"left out: {left_out[m]}"
            else:
                dropped.append(m)
                statuses[m] = "dropped after sharing"
        else:
            what = "committed" if m in committed else "shared, did not commit"
            stuck.append(f"{m} ({what}): {n_seed} seed and {n_key} key shares revealed, the threshold is {t}")
    if stuck:
        raise UnmaskError("cannot unmask yet: " + "; ".join(stuck), findings)
    if not survivors:
        raise UnmaskError("no masked update is in the sum", findings)

    # 5. Reconstruct what must be removed, each secret checked against its dealer's commitment.
    seed_of: dict[str, bytes] = {}
    for m in survivors:
        secret, bad = reconstruct(list(seeds[m].items()), t, lambda s, m=m: seed_commitment(ctx, m, s) == peers[m].seed_commitment)
        _name_bad(findings, m, SEED, bad, rnd)
        if secret is None:
            findings.append(Finding(m, "the seed shares it dealt do not reconstruct the seed it committed to"))
            raise UnmaskError(f"{m}'s self mask cannot be removed: its seed shares are inconsistent", findings)
        seed_of[m] = secret
    key_of: dict[str, X25519PrivateKey] = {}
    for m in [*left_out, *dropped]:
        public = peers[m].mask_key

        def matches(s: bytes, public: bytes = public) -> bool:
            return X25519PrivateKey.from_private_bytes(s).public_key().public_bytes_raw() == public

        secret, bad = reconstruct(list(keys[m].items()), t, matches)
        _name_bad(findings, m, KEY, bad, rnd)
        if secret is None:
            findings.append(Finding(m, "the key shares it dealt do not reconstruct the mask key it published"))
            raise UnmaskError(f"{m}'s pairwise masks cannot be removed: its key shares are inconsistent", findings)
        key_of[m] = X25519PrivateKey.from_private_bytes(secret)

    # 6. The sum: the survivors' vectors, less their self masks and their masks with everyone left out.
    count = vector_length(spec)
    z = np.zeros(count, dtype=np.uint32)
    for m in survivors:
        z += words[m]
        z -= self_mask(seed_of[m], ctx, m, count)
        statuses[m] = "in the sum"
    for gone, key in key_of.items():
        for m in survivors:
            mask = expand(pairwise_key(key, peers[m].mask_key, ctx, m, gone), count)
            if pairwise_sign(m, gone) > 0:
                z -= mask
            else:
                z += mask

    # 7. What an honest sum must satisfy.
    weight_q = {m: p.weight_q(committed[m].num_samples) for m in survivors}
    expected = sum(weight_q.values()) % (1 << 32)
    if int(z[-1]) != expected:
        raise UnmaskError(
            f"the unmasked weights sum to {int(signed(z[-1:])[0])}, the chain's sample counts give {expected}: "
            "a masked update was not made by the protocol", findings,
        )  # fmt: skip
    bound = clip_box_bound(list(weight_q.values()), p)
    largest = int(np.max(np.abs(signed(z[:-1]).astype(np.int64)))) if count > 1 else 0
    if largest > bound:
        raise UnmaskError(
            f"the unmasked sum has a coordinate of {largest}, outside the clip range's {bound}: "
            "a masked update was not encoded within it", findings,
        )  # fmt: skip
    return Unmasked(z, survivors, left_out, dropped, weight_q, findings, statuses,
                    {m: privacy[m] for m in survivors if m in privacy})  # fmt: skip


def _name_bad(findings: list[Finding], dealer: str, kind: str, bad: list[int], rnd: SecureRound) -> None:
    if bad:
        to = ", ".join(rnd.members[i - 1] for i in bad)
        findings.append(Finding(dealer, f"dealt {kind} shares that are not on its polynomial (to {to})"))
