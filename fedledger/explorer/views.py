"""The JSON behind each page, built from a :class:`Snapshot` and, for a round's or a member's
details, a few bounded reads (:class:`ChainDetails`). The HTML pages render exactly these dicts.

Verdicts are shown as the audit gives them: every field of :class:`fedledger.audit.RoundVerdict`
(``asdict``) and of :meth:`fedledger.audit.AuditReport.to_dict`, so fields the audit gains later
appear without a change here; the only thing added is a one-word ``verdict`` label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.client import as_address
from contracts.errors import InvalidArgument
from contracts.records import RoundState
from federation.genesis import describe_genesis, parse_genesis
from fedledger.audit import AuditReport
from fedledger.explorer.cache import round_key
from fedledger.explorer.details import ChainDetails
from fedledger.explorer.errors import BadRequest, NotFound
from fedledger.explorer.index import RoundEntry, Snapshot
from fedledger.jsonable import to_jsonable as plain
from ipfs import cid_to_digest, digest_to_cid

MAX_ROUND_ID = 2**64


@dataclass(frozen=True)
class ViewSettings:
    dp_budget: float | None = None  # the consortium's composed-epsilon budget per member, when it has one


def cid(digest: bytes | None) -> str | None:
    return digest_to_cid(digest) if digest else None


# -- parameters --------------------------------------------------------------------------------
def parse_round_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        raise BadRequest(f"round id {text[:40]!r} is not a number", hint="rounds are numbered 1, 2, 3, …")
    value = int(text)
    if not 0 < value < MAX_ROUND_ID:
        raise NotFound(f"there is no round {value}", hint="rounds are numbered from 1")
    return value


def parse_address(text: str) -> str:
    try:
        return as_address(text, "address")
    except InvalidArgument:
        raise BadRequest(f"{text[:60]!r} is not an Ethereum address", hint="an address is 0x and 40 hex digits") from None


def entry_of(snap: Snapshot, round_id: int) -> RoundEntry:
    entry = snap.round(round_id)
    if entry is None:
        raise NotFound(f"there is no round {round_id}", hint=f"this federation has rounds 1..{snap.current_round}")
    return entry


# -- verdicts ----------------------------------------------------------------------------------
def verdict_label(entry: RoundEntry) -> str:
    """One word for a table: the audit's (verified, mismatch, disputed, unverifiable, aborted), else open or pending."""
    v = entry.verdict
    if v is None:
        if entry.info.state is RoundState.OPEN:
            return "open"
        return "not audited" if entry.audit_error else "pending"
    return v.verdict


def audit_of(entry: RoundEntry) -> dict[str, Any] | None:
    return entry.verdict.to_dict() if entry.verdict is not None else None


def audit_report(snap: Snapshot) -> dict[str, Any]:
    """The audit's own report over every audited round, as ``fedledger audit --json`` prints it."""
    verdicts = [e.verdict for e in snap.rounds if e.verdict is not None]
    problems = list(snap.genesis_mismatches or ())
    report = AuditReport(snap.ledger, snap.descriptor_cid, snap.genesis_mismatches == (), verdicts, problems)
    report.privacy = snap.privacy
    return report.to_dict()


def privacy_mode(descriptor: dict[str, Any] | None) -> str:
    """The descriptor's privacy mode where it names one (e.g. secure aggregation), else public."""
    value = (descriptor or {}).get("privacy")
    if isinstance(value, dict):
        value = value.get("mode")
    return str(value) if isinstance(value, str) and value else "public"


def dp_budget(descriptor: dict[str, Any] | None, settings: ViewSettings) -> float | None:
    value = (descriptor or {}).get("privacy")
    if isinstance(value, dict) and isinstance(value.get("budget"), (int, float)):
        return float(value["budget"])
    return settings.dp_budget


# -- pages -------------------------------------------------------------------------------------
def round_summary(snap: Snapshot, entry: RoundEntry) -> dict[str, Any]:
    info, m = entry.info, entry.manifest
    names = {x.address: x.name for x in snap.members}
    return {
        "id": info.round_id,
        "state": info.state.name.lower(),
        "verdict": verdict_label(entry),
        "ok": entry.verdict.ok if entry.verdict else None,
        "submissions": info.submission_count,
        "accepted": sum(1 for s in m.submissions if s.accepted) if m else None,
        "rejected": sum(1 for s in m.submissions if not s.accepted) if m else None,
        "flagged": sum(1 for s in m.submissions if s.flags) if m else None,
        "base_model": cid(info.base_model),
        "global_model": cid(info.global_model),
        "manifest": cid(info.manifest),
        "deadline": info.deadline,
        "opened_block": info.opened_block,
        "closed_block": info.closed_block,
        "metrics": {k: v for k, v in (m.metrics if m else {}).items() if isinstance(v, (int, float))},
        "scores": {names.get(a, a): s for a, s in entry.scores.items()},
        "manifest_error": entry.manifest_error,
        "audit_error": entry.audit_error,
        "audit": audit_of(entry),
    }


def rounds_view(snap: Snapshot) -> list[dict[str, Any]]:
    return [round_summary(snap, e) for e in reversed(snap.rounds)]  # newest first, as explorers list blocks


def federation_view(snap: Snapshot, settings: ViewSettings) -> dict[str, Any]:
    desc = snap.descriptor or {}
    labels = [verdict_label(e) for e in snap.rounds]
    return {
        "ledger": snap.ledger,
        "chain_id": snap.chain_id,
        "descriptor": snap.descriptor_cid,
        "name": desc.get("name"),
        "strategy": desc.get("strategy"),
        "scoring": desc.get("scoring"),
        "privacy_mode": privacy_mode(snap.descriptor),
        "dp_budget": dp_budget(snap.descriptor, settings),
        "genesis_model": cid(snap.genesis_model),
        "genesis_ok": None if snap.genesis_mismatches is None else not snap.genesis_mismatches,
        "genesis_mismatches": list(snap.genesis_mismatches or ()),
        "genesis": describe_genesis(parse_genesis(desc["genesis"]) if desc.get("genesis") else None),
        "lineage": list(snap.lineage),
        "latest_model": cid(snap.latest_model),
        "coordinator": snap.coordinator,
        "min_updates": snap.min_updates,
        "current_round": snap.current_round,
        "rounds": {label: labels.count(label) for label in dict.fromkeys(labels)},
        "audit_ok": bool(snap.rounds) and snap.genesis_mismatches == () and all(e.verdict and e.verdict.ok for e in snap.rounds
                                                                               if e.info.state is not RoundState.OPEN),
        "members": [
            {"address": m.address, "name": m.name, "active": m.active, "total_score": m.total_score,
             "total_epsilon": m.total_epsilon_milli / 1000,
             "composed_epsilon": snap.privacy.get(m.address, {}).get("composed_epsilon")}
            for m in snap.members
        ],  # fmt: skip
        "version": snap.version,
        "refreshed_at": snap.refreshed_at,
        "auditing": snap.auditing,
        "error": snap.error,
    }


def round_view(snap: Snapshot, round_id: int, details: ChainDetails) -> dict[str, Any]:
    entry = entry_of(snap, round_id)
    info, m = entry.info, entry.manifest
    record = details.round_record(round_id, round_key(info), info.state is not RoundState.OPEN)
    txs = [record.opened_tx, *(s.tx_hash for s in record.submissions), *([record.closed_tx] if record.closed_tx else [])]
    gas = details.gas_used(txs)
    names = {x.address: x.name for x in snap.members}
    submissions = []
    for s in record.submissions:  # the chain's order
        e = m.submission(s.participant) if m else None
        submissions.append({
            "participant": s.participant, "name": names.get(s.participant, ""), "update": cid(s.update),
            "num_samples": s.num_samples, "epsilon": s.epsilon_milli / 1000, "score": s.score,
            "manifest_score": e.score if e else None, "status": e.status if e else None,
            "reason": e.reason if e else None, "detail": e.detail if e else None,
            "flags": list(e.flags) if e else [], "aggregated": e.aggregated if e else None,
            "weight": e.weight if e else None, "block": s.block_number, "tx": s.tx_hash, "gas": gas.get(s.tx_hash),
        })  # fmt: skip
    out = round_summary(snap, entry)
    out.update({
        "submissions": submissions,
        "absent": list(m.absent) if m else [],
        "aggregation_order": list(m.aggregation_order) if m else [],
        "strategy": m.strategy if m else None,
        "transactions": {"open": record.opened_tx, "close": record.closed_tx},
        "gas": {"open": gas.get(record.opened_tx), "close": gas.get(record.closed_tx) if record.closed_tx else None,
                "submissions": sum(g for s in submissions if (g := s["gas"]) is not None)},  # fmt: skip
        "events": [{"name": e.name, "block": e.block_number, "tx": e.tx_hash, "args": plain(e.args)} for e in record.events],
        "manifest_json": m.raw if m else None,
    })  # fmt: skip
    return out


def update_view(snap: Snapshot, round_id: int, address: str, details: ChainDetails) -> dict[str, Any]:
    round_ = round_view(snap, round_id, details)
    sub = next((s for s in round_["submissions"] if s["participant"] == address), None)
    if sub is None:
        raise NotFound(f"{address} submitted nothing in round {round_id}")
    max_bytes = int((snap.descriptor or {}).get("max_update_bytes", 64 << 20))
    try:
        header = details.update_header(cid_to_digest(sub["update"]), max_bytes)
    except (NotFound, BadRequest) as exc:
        header = {"error": str(exc)}
    except Exception as exc:  # the header is shown, not needed: a store that is down still shows the chain's record
        header = {"error": f"{type(exc).__name__}: {exc}"}
    notes = [n for n in (round_["audit"] or {}).get("notes", []) + (round_["audit"] or {}).get("mismatches", []) if address in n]
    return {"round": round_id, "round_verdict": round_["verdict"], **sub, "header": plain(header), "audit_lines": notes}


def member_view(snap: Snapshot, address: str, details: ChainDetails, settings: ViewSettings) -> dict[str, Any]:
    member = snap.member(address)
    history = details.history(address, snap.version)
    if member is None and not history.submissions:
        raise NotFound(f"{address} is not a member of this federation and never submitted")
    rows = []
    for s in history.submissions:
        entry = snap.round(s.round_id)
        e = entry.manifest.submission(address) if entry and entry.manifest else None
        rows.append({
            "round": s.round_id, "round_state": entry.info.state.name.lower() if entry else None,
            "round_verdict": verdict_label(entry) if entry else None, "update": cid(s.update),
            "num_samples": s.num_samples, "epsilon": s.epsilon_milli / 1000, "score": s.score,
            "status": e.status if e else None, "reason": e.reason if e else None,
            "flags": list(e.flags) if e else [], "block": s.block_number, "tx": s.tx_hash,
        })  # fmt: skip
    spend = snap.privacy.get(history.participant)
    return {
        "address": history.participant,
        "name": history.name,
        "active": history.active,
        "total_score": history.total_score,
        "total_epsilon": history.total_epsilon_milli / 1000,
        "composed_epsilon": spend.get("composed_epsilon") if spend else None,
        "dp_budget": dp_budget(snap.descriptor, settings),
        "privacy": spend,
        "rounds": rows,
    }


def lineage_view(snap: Snapshot) -> dict[str, Any]:
    """Genesis, then each finalised round's global model; aborted rounds hang off the model they started from."""
    nodes: list[dict[str, Any]] = [{"round": 0, "model": cid(snap.genesis_model), "verdict": "genesis",
                                    "ok": None if snap.genesis_mismatches is None else not snap.genesis_mismatches}]  # fmt: skip
    side: list[dict[str, Any]] = []
    previous = snap.genesis_model
    for e in snap.rounds:
        info = e.info
        if info.state is RoundState.FINALIZED:
            nodes.append({"round": info.round_id, "model": cid(info.global_model), "base": cid(info.base_model),
                          "manifest": cid(info.manifest), "verdict": verdict_label(e), "ok": e.verdict.ok if e.verdict else None,
                          "links_previous": info.base_model == previous})  # fmt: skip
            previous = info.global_model
        else:
            side.append({"round": info.round_id, "base": cid(info.base_model), "state": info.state.name.lower(),
                         "verdict": verdict_label(e)})  # fmt: skip
    return {"genesis": cid(snap.genesis_model), "latest": cid(snap.latest_model), "models": nodes, "other_rounds": side}


# -- chart data ----------------------------------------------------------------------------------
def metrics_series(snap: Snapshot) -> dict[str, list[tuple[float, float]]]:
    """Each finalised round's validation metrics that are fractions (accuracy, macro-F1, …), by round."""
    out: dict[str, list[tuple[float, float]]] = {}
    for e in snap.rounds:
        for k, v in (e.manifest.metrics if e.manifest else {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1:
                out.setdefault(k, []).append((e.info.round_id, float(v)))
    return out


def score_series(snap: Snapshot, only: str | None = None) -> dict[str, list[tuple[float, float]]]:
    """The scores the chain recorded, per member and round."""
    names = {m.address: m.name or m.address[:10] for m in snap.members}
    out: dict[str, list[tuple[float, float]]] = {}
    for e in snap.rounds:
        for a, s in e.scores.items():
            if only is None or a == only:
                out.setdefault(names.get(a, a[:10]), []).append((e.info.round_id, float(s)))
    return out
