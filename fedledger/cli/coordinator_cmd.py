"""`fedledger coordinator run`: open, close, finalise or abort rounds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fedledger.cli.common import (
    ApiOpt,
    ChainIdOpt,
    ConfigOpt,
    DescriptorOpt,
    KeyEnvOpt,
    KeystoreOpt,
    LedgerOpt,
    PasswordFileOpt,
    RpcOpt,
    StoreOpt,
    attach_ledger,
    chain_config,
    console,
    event_printer,
    load_signer,
    open_configured_store,
    require,
    status_text,
)
from fedledger.cli.ops_options import LogFormatOpt, MetricsPortOpt, operated

app = typer.Typer(help="Run the off-chain coordinator.", no_args_is_help=True)


@app.command("run")
def coordinator_run(
    rounds: int = typer.Option(None, "--rounds", help="Stop once the ledger holds this many finalised rounds."),
    round_seconds: int = typer.Option(None, "--round-seconds", help="Seconds from opening a round to its deadline."),
    fetch_timeout: float = typer.Option(
        None, "--fetch-timeout", help="The reveal window: seconds to wait for members' bytes once submissions close "
        "(default: the descriptor's)."
    ),
    fetch_workers: int = typer.Option(None, "--fetch-workers", help="Parallel update fetches."),
    holdout_dir: Path = typer.Option(None, "--holdout-dir", help="The scoring hold-outs `fedledger deploy` wrote (revealed one per round)."),
    archive_dir: Path = typer.Option(None, "--archive-dir", help="Also keep every accepted update as a CAR file here."),
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    descriptor: str = DescriptorOpt,
    keystore: Path = KeystoreOpt,
    password_file: Path = PasswordFileOpt,
    key_env: str = KeyEnvOpt,
    events: bool = typer.Option(False, "--events", help="Print one JSON line per event on stdout."),
    metrics_port: int = MetricsPortOpt,
    log_format: str = LogFormatOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Open, close, finalise (or abort) rounds until --rounds are finalised."""
    from coordinator.service import CoordinatorService, CoordinatorSettings

    cfg = chain_config(
        config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor, round_seconds=round_seconds,
        fetch_timeout=fetch_timeout, fetch_workers=fetch_workers,
    )  # fmt: skip
    account = load_signer(keystore, password_file, key_env)
    f = cfg.federation
    operations = operated("coordinator", metrics_port=metrics_port, log_format=log_format, verbose=verbose)
    with operations as ops_event, console.status("starting", spinner="dots") as status:
        def show(kind: str, info: dict) -> None:
            ops_event(kind, info)
            if events:
                event_printer(True)(kind, info)
            elif kind in ("finalized", "aborted"):
                console.print(f"round {info['round']}: {kind} {info.get('manifest') or info.get('reason') or ''}")
            else:
                status.update(status_text(kind, info))

        service = CoordinatorService(
            attach_ledger(cfg, account), open_configured_store(cfg), require(f.descriptor, "federation descriptor", "--descriptor"),
            settings=CoordinatorSettings(
                f.round_seconds, f.fetch_timeout, f.fetch_workers, f.poll_seconds, holdout_dir=holdout_dir,
                archive_dir=archive_dir,
            ),
            on_event=show,
        )  # fmt: skip
        outcomes = service.run(rounds=rounds if rounds is not None else f.rounds)
    _print_outcomes(outcomes)


def _print_outcomes(outcomes) -> None:  # noqa: ANN001
    table = Table(title="rounds")
    for col in ("round", "outcome", "accepted", "rejected", "gas"):
        table.add_column(col)
    for o in outcomes:
        acc = sum(v.accepted for v in o.result.verdicts) if o.result else 0
        rej = len(o.result.verdicts) - acc if o.result else 0
        table.add_row(str(o.round_id), "finalised" if o.finalized else f"aborted: {o.reason}", str(acc), str(rej), f"{o.gas_used:,}")
    console.print(table)


