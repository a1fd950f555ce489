"""`fedledger audit`: re-derive every round from chain and store; audit queries."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from fedledger.cli.common import (
    ApiOpt,
    ChainIdOpt,
    ConfigOpt,
    DescriptorOpt,
    LedgerOpt,
    RpcOpt,
    StoreOpt,
    attach_ledger,
    console,
    federation_config,
    open_configured_store,
)  # fmt: skip
from fedledger.config import Config, ConfigError
from fedledger.jsonable import to_jsonable as _plain

audit_app = typer.Typer(help="Re-derive and check the federation's rounds.", invoke_without_command=True)

# Every option of the audit is accepted before the sub-command (`audit --config f round 1`) and after it
# (`audit round 1 --config f`); a value given after the sub-command wins.
JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")
ParentRpcOpt = typer.Option(
    None, "--parent-rpc", help="CHAIN_ID=URL[,CHAIN_ID=URL...]: where to read parent ledgers on other chains (lineage)."
)
_OPTIONS: tuple[tuple[str, type, Any], ...] = (
    ("as_json", bool, JsonOpt), ("config", Path, ConfigOpt), ("rpc_url", str, RpcOpt), ("ledger", str, LedgerOpt),
    ("chain_id", int, ChainIdOpt), ("store", Path, StoreOpt), ("ipfs_api", str, ApiOpt), ("descriptor", str, DescriptorOpt),
    ("parent_rpc", str, ParentRpcOpt),
)  # fmt: skip


def _settings(ctx: typer.Context, given: dict[str, Any]) -> tuple[Config, bool]:
    """The config and --json from the group's options with the sub-command's on top."""
    outer = ctx.obj or {}
    merged = {name: given[name] if given.get(name) is not None else outer.get(name) for name, _, _ in _OPTIONS}
    as_json = bool(merged.pop("as_json") or outer.get("as_json"))
    config = merged.pop("config")
    if merged.get("parent_rpc"):  # read by parent_rpcs(ctx), not by the config
        ctx.ensure_object(dict)["parent_rpc"] = merged["parent_rpc"]
    parent_rpcs(ctx, merged.pop("parent_rpc"))  # a malformed --parent-rpc is refused before any connection
    return federation_config(config, **merged), as_json


def parent_rpcs(ctx: typer.Context, given: str | None = None) -> dict[int, str]:
    """``--parent-rpc CHAIN_ID=URL,...`` as a mapping; a malformed entry is a one-line error."""
    text = given or (ctx.obj or {}).get("parent_rpc") or ""
    out: dict[int, str] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        chain, sep, url = entry.partition("=")
        if not sep or not chain.strip().isdigit() or not url.strip():
            raise ConfigError(f"--parent-rpc entry {entry!r} is not CHAIN_ID=URL", hint="e.g. --parent-rpc 31337=http://127.0.0.1:8545")
        out[int(chain)] = url.strip()
    return out


def with_audit_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a sub-command every option of the group; it is called with ``cfg`` and ``as_json`` resolved."""
    own = [p for p in inspect.signature(command).parameters.values() if p.name not in ("cfg", "as_json")]
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt, annotation=t) for name, t, opt in _OPTIONS]

    @functools.wraps(command)
    def run(ctx: typer.Context, *args: Any, **kwargs: Any) -> None:
        given = {name: kwargs.pop(name) for name, _, _ in _OPTIONS}
        cfg, as_json = _settings(ctx, given)
        command(ctx, *args, cfg=cfg, as_json=as_json, **kwargs)

    run.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in [*own, *extra]}
    return run


def _print_lineage(links: list[dict[str, Any]]) -> None:
    for link in links:
        state = "[green]verified" if link["ok"] else "[red]BROKEN"
        console.print(
            f"lineage: {link['child']} starts from round {link['round']} of {link['parent']} (chain {link['chain_id']}), "
            f"model {link['model']}: {state}", highlight=False,
        )  # fmt: skip


def _print_report(report) -> None:  # noqa: ANN001
    _print_lineage(report.lineage)
    if not report.rounds:
        verdict = "no rounds yet; genesis model verified" if report.ok else "no rounds yet; DISCREPANCIES"
        console.print(f"audit of {report.ledger}: {verdict}", highlight=False)
        for m in report.mismatches:
            console.print(f"[red]{escape(m)}")
        return
    t = Table(title=f"audit of {report.ledger}: {'every round verified' if report.ok else 'DISCREPANCIES'}")
    for col in ("round", "state", "verdict", "accepted", "rejected", "seconds", "details"):
        t.add_column(col, overflow="fold")
    colour = {"verified": "green", "mismatch": "red", "disputed": "red", "unverifiable": "yellow"}
    for v in report.rounds:
        verdict = v.verdict
        t.add_row(
            str(v.round_id), v.state, f"[{colour.get(verdict, 'white')}]{verdict}", str(v.accepted), str(v.rejected),
            f"{v.seconds:.2f}", escape("; ".join(v.mismatches + v.disputed + v.unavailable + v.notes)),
        )  # fmt: skip
    console.print(t)
    for m in report.mismatches:
        console.print(f"[red]{escape(m)}")


@audit_app.callback()
def audit(
    ctx: typer.Context,
    as_json: bool = JsonOpt,
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    descriptor: str = DescriptorOpt,
    parent_rpc: str = ParentRpcOpt,
) -> None:
    """Re-derive every finalised round; exit 1 on any discrepancy, naming it."""
    ctx.obj = {"as_json": as_json, "config": config, "rpc_url": rpc_url, "ledger": ledger, "chain_id": chain_id,
               "store": store, "ipfs_api": ipfs_api, "descriptor": descriptor, "parent_rpc": parent_rpc}  # fmt: skip
    if ctx.invoked_subcommand is not None:
        return
    from fedledger.audit import Auditor

    cfg, as_json = _settings(ctx, {})
    report = Auditor(
        attach_ledger(cfg), open_configured_store(cfg), descriptor_cid=cfg.federation.descriptor, parent_rpcs=parent_rpcs(ctx)
    ).audit()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("round")
@with_audit_options
def audit_round(ctx: typer.Context, round_id: int = typer.Argument(..., help="Round number."), *, cfg: Config, as_json: bool) -> None:
    """One round's full record, re-derived."""
    from contracts.history import round_record
    from fedledger.audit import Auditor

    chain = attach_ledger(cfg)
    record = round_record(chain, round_id)
    report = Auditor(
        chain, open_configured_store(cfg), descriptor_cid=cfg.federation.descriptor, parent_rpcs=parent_rpcs(ctx)
    ).audit([round_id])
    if as_json:
        print(json.dumps({"record": _plain(record), "audit": report.to_dict()}, indent=2, sort_keys=True, default=str))
    else:
        console.print(_round_table(_plain(record)))
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("participant")
@with_audit_options
def audit_participant(
    ctx: typer.Context, address: str = typer.Argument(..., help="Participant address."), *, cfg: Config, as_json: bool
) -> None:
    """A participant's full history: rounds, digests, samples, epsilon, scores."""
    from contracts.history import participant_history
    from fedledger.audit import NotAMember

    chain = attach_ledger(cfg)
    history = participant_history(chain, address)
    if not history.name and not history.submissions:  # registering needs a name, and removal keeps it
        raise NotAMember(
            f"{history.participant} was never a participant of ledger {chain.address}",
            hint="check the address; `fedledger audit lineage` and `fedledger audit round N` list who took part",
        )
    plain = _plain(history)
    if as_json:
        print(json.dumps(plain, indent=2, sort_keys=True, default=str))
        return
    status = "active" if history.active else "removed"
    console.print(
        f"{escape(history.name)} ({history.participant}), {status}: total score {history.total_score}, "
        f"epsilon spent {history.total_epsilon_milli / 1000:g} (the ledger's naive sum)",
        highlight=False,
    )
    console.print(_submissions_table(f"{len(history.submissions)} submission(s)", plain["submissions"]))


@audit_app.command("lineage")
@with_audit_options
def audit_lineage(ctx: typer.Context, *, cfg: Config, as_json: bool) -> None:
    """The model lineage from genesis to the latest global model, and the genesis's ancestry across ledgers."""
    from contracts.history import lineage
    from fedledger.audit import Auditor

    chain = attach_ledger(cfg)
    plain = _plain(lineage(chain))
    auditor = Auditor(chain, open_configured_store(cfg), descriptor_cid=cfg.federation.descriptor, parent_rpcs=parent_rpcs(ctx))
    plain["ancestors"] = [link.to_dict() for link in auditor.check_lineage()]
    if as_json:
        print(json.dumps(plain, indent=2, sort_keys=True, default=str))
        return
    t = Table(title=f"lineage from genesis model {plain['genesis_model']}")
    for col in ("round", "base model", "global model", "manifest", "block"):
        t.add_column(col, overflow="fold")
    for step in plain["steps"]:
        t.add_row(str(step["round_id"]), step["base_model"], step["global_model"], step["manifest"], str(step["closed_block"]))
    console.print(t if plain["steps"] else f"no finalised round yet: the latest model is the genesis model {plain['genesis_model']}")
    for r in plain.get("rebases", []):
        target = f"round {r['to_round']}" if r["to_round"] else "the genesis model"
        console.print(f"rebased in block {r['block_number']}: the head moved from round {r['from_round']} back to {target}")
    _print_lineage(plain["ancestors"])


def _submissions_table(title: str, submissions: list[dict]) -> Table:
    t = Table(title=title)
    for col in ("round", "participant", "update", "samples", "epsilon", "score", "block"):
        t.add_column(col, overflow="fold")
    for s in submissions:
        score = "-" if s["score"] is None else str(s["score"])
        t.add_row(str(s["round_id"]), s["participant"], s["update"], f"{s['num_samples']:,}",
                  f"{s['epsilon_milli'] / 1000:g}", score, str(s["block_number"]))  # fmt: skip
    return t


def _round_table(record: dict) -> Table:
    info = record["info"]
    title = f"round {info.get('round_id', '')}: {info.get('state')}, base {info.get('base_model')}"
    if info.get("global_model"):
        title += f", global {info['global_model']}"
    return _submissions_table(title, record["submissions"])


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
