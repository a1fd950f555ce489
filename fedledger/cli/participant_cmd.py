"""`fedledger participant run` and `participant stats`: one organisation's side of the federation."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import typer

from faults import FedLedgerError
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
)
from fedledger.cli.federation_cmd import DATA_FORMATS
from fedledger.cli.ops_options import LogFormatOpt, MetricsPortOpt, operated

app = typer.Typer(help="Run a participant (one organisation).", no_args_is_help=True)

# What `participant run` builds: the honest service. The demo's planted attackers (an app of
# their own, fedledger.attacks.member) start the same command with their own class here.
PARTICIPANT_SERVICE = None


def participant_service():  # noqa: ANN201
    from participant.service import ParticipantService

    return PARTICIPANT_SERVICE or ParticipantService


@app.command("run")
def participant_run(
    data: Path = typer.Option(..., "--data", help="Local flows: a flow set (`fedledger flows convert`), or a raw export with --data-format."),
    data_format: str = typer.Option("flowset", "--data-format", help=f"One of {', '.join(DATA_FORMATS)}."),
    state_dir: Path = typer.Option(Path("participant-state"), "--state-dir", help="Where error-feedback state is kept."),
    rounds: int = typer.Option(None, "--rounds", help="Take part in this many rounds, then exit (default: until stopped)."),
    one_shot: bool = typer.Option(False, "--one-shot", help="Take part in one round, then exit."),
    idle_exit: float = typer.Option(None, "--idle-exit", help="Exit after this many seconds with nothing to do."),
    epochs: int = typer.Option(None, "--epochs"),
    batch_size: int = typer.Option(None, "--batch-size"),
    lr: float = typer.Option(None, "--lr"),
    mu: float = typer.Option(None, "--mu", help="FedProx proximal term (0 = FedAvg)."),
    absent_class_scale: float = typer.Option(
        None, "--absent-class-scale", help="FedRS: scale of the outputs of classes never seen locally (1 = off; default 0)."
    ),
    class_weights: str = typer.Option(None, "--class-weights", help="Loss weights per class: balanced, sqrt (default) or none."),
    logit_calibration: float = typer.Option(
        None, "--logit-calibration", help="FedLC: tau of the margin held classes train against (0 = off; default 0.5)."
    ),
    personal_epochs: int = typer.Option(
        0, "--personal-epochs", help="Keep a personal model: every global model fine-tuned this many epochs on the local data "
        "(STATE_DIR/<chain>-<ledger>/personal-model.bin; never submitted). 0 = off."
    ),
    codec: str = typer.Option("int8:256", "--codec", help="Update codec, e.g. none, int8:256, topk:0.05+int8:256."),
    dp_epsilon: float = typer.Option(None, "--dp-epsilon", help="Train under differential privacy: target epsilon per round."),
    dp_delta: float = typer.Option(None, "--dp-delta", help="DP delta (default 1e-5; must be below 1/local records)."),
    dp_budget: float = typer.Option(None, "--dp-budget", help="Total composed epsilon this member may spend; refuses beyond it."),
    dp_clip: float = typer.Option(None, "--dp-clip", help="DP clipping norm (per sample, or per update with --dp-level client)."),
    dp_level: str = typer.Option(None, "--dp-level", help="record (DP-SGD, default) or client (noised update)."),
    dp_accountant: str = typer.Option(None, "--dp-accountant", help="rdp (default) or prv."),
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
    """Wait for rounds, train on local flows, submit encoded updates."""
    from federation.descriptor import MAX_DESCRIPTOR_BYTES, Descriptor
    from federation.updates import CodecParams
    from fedledger.flowfiles import load_local_flows
    from fedledger.ops import fan_out
    from participant.dp_training import dp_from_options
    from participant.update import TrainingSettings

    if personal_epochs < 0:
        raise FedLedgerError(f"--personal-epochs must be 0 or more, got {personal_epochs}")

    dp = dp_from_options(dp_epsilon, dp_delta, dp_budget, clip=dp_clip, level=dp_level, accountant=dp_accountant)
    cfg = chain_config(config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor)
    cfg = cfg.with_overrides(
        training={"epochs": epochs, "batch_size": batch_size, "lr": lr, "mu": mu, "absent_class_scale": absent_class_scale,
                  "class_weights": class_weights, "logit_calibration": logit_calibration}
    )
    if cfg.training.class_weights not in ("balanced", "sqrt", "none"):
        raise FedLedgerError(f"class weights {cfg.training.class_weights!r} are not balanced, sqrt or none", hint="see --class-weights")
    account = load_signer(keystore, password_file, key_env)
    st = open_configured_store(cfg)
    desc = Descriptor.from_bytes(
        st.get(require(cfg.federation.descriptor, "federation descriptor", "--descriptor"), max_bytes=MAX_DESCRIPTOR_BYTES)
    )
    local = load_local_flows(data, data_format, desc)  # a file that is not a flow set says so, with a hint
    t = cfg.training
    operations = operated("participant", metrics_port=metrics_port, log_format=log_format, verbose=verbose)
    with operations as ops_event, _progress(enabled=not events) as (on_event, on_progress):
        service = participant_service()(
            attach_ledger(cfg, account), st, desc, local, state_dir=state_dir, descriptor_cid=cfg.federation.descriptor,
            settings=TrainingSettings(t.epochs, t.batch_size, t.lr, t.mu, t.absent_class_scale, CodecParams.parse(codec), dp=dp,
                                      personal_epochs=personal_epochs, logit_calibration=t.logit_calibration,
                                      class_weights=None if t.class_weights == "none" else t.class_weights),
            poll_seconds=cfg.federation.poll_seconds, on_event=fan_out(ops_event, event_printer(events) if events else on_event),
            on_progress=on_progress,
        )  # fmt: skip
        done = service.run(rounds=1 if one_shot else rounds, idle_exit=idle_exit)
    console.print(f"submitted to {len(done)} round(s)")
    if service.privacy is not None:
        spend = service.privacy.summary()
        console.print(
            f"privacy spent: epsilon {spend['composed_epsilon']:.3f} composed ({spend['accountant'].upper()}, delta "
            f"{spend['delta']:g}) over {len(spend['rounds'])} round(s); naive sum {spend['naive_sum_epsilon']:.3f}"
            + (f"; budget {spend['budget']:g}" if spend["budget"] is not None else "")
        )


@contextmanager
def _progress(enabled: bool):  # noqa: ANN202
    """Rich progress bars for a participant's training and upload (off when --events is machine output)."""
    if not enabled:
        yield (lambda kind, info: None), None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
        transient=False,
    ) as bar:  # fmt: skip
        task = {"id": None}

        def on_event(kind: str, info: dict) -> None:
            if kind == "train":
                task["id"] = bar.add_task(f"round {info['round']}: training on {info['records']:,} flows", total=None)
            elif kind == "submit":
                bar.console.print(f"round {info['round']}: uploaded {info['bytes']:,} bytes as {info['cid']}")
            elif kind == "submitted":
                bar.console.print(f"round {info['round_id']}: submitted (gas {info['gas_used']:,})")
            elif kind in ("retry", "skipped"):
                bar.console.print(f"[yellow]{kind}: {info.get('error')}")

        def on_progress(step: int, total: int) -> None:
            if task["id"] is not None:
                bar.update(task["id"], completed=step, total=total)

        yield on_event, on_progress


@app.command("stats")
def participant_stats(
    data: Path = typer.Option(..., "--data", help="Local flow records in a raw format."),
    data_format: str = typer.Option(..., "--data-format", help="nsl-kdd, unsw-nb15 or cicids2017."),
    out: Path = typer.Option(..., "--out", help="Write the aggregate statistics (JSON) here."),
) -> None:
    """Aggregate statistics of local flows (count, sums, sums of squares) for the federation's normalisation.

    Only these sums leave the organisation, never a row; the admin merges every member's file at deploy time.
    """
    from flows import local_stats

    stats, report = local_stats(data_format, data)
    out.write_text(json.dumps(stats.to_dict()), encoding="utf-8")
    console.print(f"wrote statistics of {stats.count:,} flows ({report.skipped} rows skipped) to {out}")


