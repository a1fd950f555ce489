"""`fedledger audit`: re-derive every round from chain and store; audit queries."""

from __future__ import annotations

import json
from pathlib import Path

import typer
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
from fedledger.jsonable import to_jsonable as _plain

audit_app = typer.Typer(help="Re-derive and check the federation's rounds.", invoke_without_command=True)


def _print_report(report) -> None:  # noqa: ANN001
    t = Table(title=f"audit of {report.ledger}: {'every round verified' if report.ok else 'DISCREPANCIES'}")
    for col in ("round", "state", "verdict", "accepted", "rejected", "seconds", "details"):
        t.add_column(col)
    colour = {"verified": "green", "mismatch": "red", "disputed": "red", "unverifiable": "yellow"}
    for v in report.rounds:
        verdict = v.verdict
        t.add_row(
            str(v.round_id), v.state, f"[{colour.get(verdict, 'white')}]{verdict}", str(v.accepted), str(v.rejected),
            f"{v.seconds:.2f}", "; ".join(v.mismatches + v.disputed + v.unavailable + v.notes),
        )  # fmt: skip
    console.print(t)
    for m in report.mismatches:
        console.print(f"[red]{m}")


@audit_app.callback()
def audit(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    descriptor: str = DescriptorOpt,
) -> None:
    """Re-derive every finalised round; exit 1 on any discrepancy, naming it."""
    cfg = federation_config(
        config, rpc_url=rpc_url, ledger=ledger, chain_id=chain_id, store=store, ipfs_api=ipfs_api, descriptor=descriptor
    )
    ctx.obj = {"cfg": cfg, "json": as_json}
    if ctx.invoked_subcommand is not None:
        return
    from fedledger.audit import Auditor

    report = Auditor(attach_ledger(cfg), open_configured_store(cfg), descriptor_cid=cfg.federation.descriptor).audit()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("round")
def audit_round(ctx: typer.Context, round_id: int = typer.Argument(..., help="Round number.")) -> None:
    """One round's full record, re-derived."""
    from contracts.history import round_record
    from fedledger.audit import Auditor

    cfg, as_json = ctx.obj["cfg"], ctx.obj["json"]
    ledger = attach_ledger(cfg)
    record = round_record(ledger, round_id)
    report = Auditor(ledger, open_configured_store(cfg), descriptor_cid=cfg.federation.descriptor).audit([round_id])
    if as_json:
        print(json.dumps({"record": _plain(record), "audit": report.to_dict()}, indent=2, sort_keys=True, default=str))
    else:
        console.print(_plain(record))
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("participant")
def audit_participant(ctx: typer.Context, address: str = typer.Argument(..., help="Participant address.")) -> None:
    """A participant's full history: rounds, digests, samples, epsilon, scores."""
    from contracts.history import participant_history

    cfg, as_json = ctx.obj["cfg"], ctx.obj["json"]
    history = participant_history(attach_ledger(cfg), address)
    if as_json:
        print(json.dumps(_plain(history), indent=2, sort_keys=True, default=str))
    else:
        console.print(_plain(history))


@audit_app.command("lineage")
def audit_lineage(ctx: typer.Context) -> None:
    """The model lineage from genesis to the latest global model."""
    from contracts.history import lineage

    cfg, as_json = ctx.obj["cfg"], ctx.obj["json"]
    chain = lineage(attach_ledger(cfg))
    if as_json:
        print(json.dumps(_plain(chain), indent=2, sort_keys=True, default=str))
    else:
        console.print(_plain(chain))


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
