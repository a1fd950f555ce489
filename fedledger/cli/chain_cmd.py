"""Commands that run the federation: deploy, register, coordinator, participant."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
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
    console,
    federation_config,
    open_configured_store,
    require,
    setup_logging,
    status_text,
)
from fedledger.config import dump_config

coordinator_app = typer.Typer(help="Run the off-chain coordinator.", no_args_is_help=True)
participant_app = typer.Typer(help="Run a participant (one organisation).", no_args_is_help=True)

DATA_FORMATS = ("flowset", "synthetic", "nsl-kdd", "unsw-nb15", "cicids2017")


def _account(keystore, password_file, key_env):  # noqa: ANN001, ANN202
    from fedledger.keys import load_account  # eth-account is slow to import; only commands that sign need it

    return load_account(keystore=keystore, password_file=password_file, key_env=key_env)


def _chain(config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor=None, **extra):  # noqa: ANN001, ANN202
    return federation_config(
        config, rpc_url=rpc_url, ledger=ledger, chain_id=chain_id, store=store, ipfs_api=ipfs_api,
        descriptor=descriptor, **extra,
    )  # fmt: skip


def deploy(
    validation: Path = typer.Option(None, "--validation", help="Public validation set (a flow set, or a raw file with --validation-format). Default: synthetic."),
    validation_format: str = typer.Option("flowset", "--validation-format", help=f"One of {', '.join(DATA_FORMATS)}."),
    stats: list[Path] = typer.Option(None, "--stats", help="A member's statistics file (repeat for every member): fixes the normalisation."),
    name: str = typer.Option("fedledger", "--name", help="Federation name (goes into the descriptor)."),
    min_updates: int = typer.Option(1, "--min-updates", help="Quorum: updates needed to finalise a round."),
    strategy: str = typer.Option(
        "fedavg", "--strategy", help="Aggregation: fedavg, fedavgm, fedadam, median, trimmed-mean, multi-krum."
    ),
    scoring: str = typer.Option("leave-one-out", "--scoring", help="Contribution scores: leave-one-out or gtg-shapley."),
    hidden: str = typer.Option("64,32", "--hidden", help="Hidden layer sizes of the MLP."),
    seed: int = typer.Option(0, "--seed", help="Federation seed (genesis weights, training seeds)."),
    coordinator: str = typer.Option(None, "--coordinator", help="Coordinator address (default: the deployer)."),
    out: Path = typer.Option(None, "--out", help="Write the federation TOML here."),
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    keystore: Path = KeystoreOpt,
    password_file: Path = PasswordFileOpt,
    key_env: str = KeyEnvOpt,
) -> None:
    """Create a federation: descriptor, validation set and genesis model in the store; the ledger on chain."""
    from fedledger.config import ConfigError
    from fedledger.data import load_dataset, schema_for
    from fedledger.data.synthetic import generate
    from fedledger.federation import load_flowset
    from fedledger.setup_federation import create_federation

    cfg = _chain(config, rpc_url, None, chain_id, store, ipfs_api)
    account = _account(keystore, password_file, key_env)
    st = open_configured_store(cfg)
    normaliser = None
    if stats:
        from fedledger.data.schema import LocalStats, Normaliser, merge

        schema = schema_for(validation_format)
        merged = merge(LocalStats.from_dict(json.loads(p.read_text(encoding="utf-8"))) for p in stats)
        normaliser = Normaliser.from_stats(schema, merged)
    if validation is None:
        data = generate(4000, seed + 7919)
    elif validation_format == "flowset":
        data = load_flowset(validation.read_bytes())
    else:
        if normaliser is None:
            raise ConfigError("a raw validation file needs the members' --stats to fix its normalisation")
        data, _ = load_dataset(validation_format, validation, None, test_fraction=0.0, normaliser=normaliser)
    fed = create_federation(
        rpc_url=cfg.chain.rpc_url, admin=account, store=st, name=name, validation=data,
        hidden=tuple(int(h) for h in hidden.split(",") if h.strip()), strategy=strategy, min_updates=min_updates,
        seed=seed, coordinator=coordinator, expected_chain_id=cfg.chain.chain_id,
        normaliser=normaliser.to_dict() if normaliser is not None else None, scoring=scoring,
    )  # fmt: skip
    cfg = cfg.with_overrides(chain={"ledger": fed.ledger.address}, federation={"descriptor": fed.descriptor_cid})
    if out:
        out.write_text(dump_config(cfg), encoding="utf-8")
    table = Table(title="federation created", show_header=False)
    for k, v in (
        ("ledger", fed.ledger.address), ("descriptor", fed.descriptor_cid), ("genesis model", fed.genesis_cid),
        ("validation set", fed.validation_cid), ("deploy gas", f"{fed.deploy_gas:,}"), ("config", str(out or "-")),
    ):  # fmt: skip
        table.add_row(k, v)
    console.print(table)
    print(fed.ledger.address)


def register(
    participant: str = typer.Argument(..., help="Address of the organisation's signing key."),
    name: str = typer.Argument(..., help="The organisation's name."),
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    keystore: Path = KeystoreOpt,
    password_file: Path = PasswordFileOpt,
    key_env: str = KeyEnvOpt,
) -> None:
    """Register an organisation (admin only)."""
    cfg = _chain(config, rpc_url, ledger, chain_id, None, None)
    account = _account(keystore, password_file, key_env)
    tx = attach_ledger(cfg, account).register_participant(participant, name)
    console.print(f"registered {participant} ({name}); gas {tx.gas_used:,}")


@coordinator_app.command("run")
def coordinator_run(
    rounds: int = typer.Option(None, "--rounds", help="Stop once the ledger holds this many finalised rounds."),
    round_seconds: int = typer.Option(None, "--round-seconds", help="Seconds from opening a round to its deadline."),
    fetch_timeout: float = typer.Option(None, "--fetch-timeout", help="Seconds to keep retrying an update fetch."),
    fetch_workers: int = typer.Option(None, "--fetch-workers", help="Parallel update fetches."),
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
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Open, close, finalise (or abort) rounds until --rounds are finalised."""
    from coordinator.service import CoordinatorService, CoordinatorSettings

    setup_logging(verbose)
    cfg = _chain(
        config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor, round_seconds=round_seconds,
        fetch_timeout=fetch_timeout, fetch_workers=fetch_workers,
    )  # fmt: skip
    account = _account(keystore, password_file, key_env)
    f = cfg.federation
    with console.status("starting", spinner="dots") as status:
        def show(kind: str, info: dict) -> None:
            if events:
                _event_printer(True)(kind, info)
            elif kind in ("finalized", "aborted"):
                console.print(f"round {info['round']}: {kind} {info.get('manifest') or info.get('reason') or ''}")
            else:
                status.update(status_text(kind, info))

        service = CoordinatorService(
            attach_ledger(cfg, account), open_configured_store(cfg), require(f.descriptor, "federation descriptor", "--descriptor"),
            settings=CoordinatorSettings(f.round_seconds, f.fetch_timeout, f.fetch_workers, f.poll_seconds),
            on_event=show,
        )  # fmt: skip
        outcomes = service.run(rounds=rounds if rounds is not None else f.rounds)
    table = Table(title="rounds")
    for col in ("round", "outcome", "accepted", "rejected", "gas"):
        table.add_column(col)
    for o in outcomes:
        acc = sum(v.accepted for v in o.result.verdicts) if o.result else 0
        rej = len(o.result.verdicts) - acc if o.result else 0
        table.add_row(str(o.round_id), "finalised" if o.finalized else f"aborted: {o.reason}", str(acc), str(rej), f"{o.gas_used:,}")
    console.print(table)


@participant_app.command("run")
def participant_run(
    data: Path = typer.Option(..., "--data", help="Local flow records."),
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
        None, "--absent-class-scale", help="FedRS: scale of the outputs of classes never seen locally (1 = off)."
    ),
    codec: str = typer.Option("int8:256", "--codec", help="Update codec, e.g. none, int8:256, topk:0.05+int8:256."),
    dp_epsilon: float = typer.Option(None, "--dp-epsilon", help="Train under differential privacy: target epsilon per round."),
    dp_delta: float = typer.Option(None, "--dp-delta", help="DP delta (default 1e-5; must be below 1/local records)."),
    dp_budget: float = typer.Option(None, "--dp-budget", help="Total composed epsilon this member may spend; refuses beyond it."),
    dp_clip: float = typer.Option(None, "--dp-clip", help="DP clipping norm (per sample, or per update with --dp-level client)."),
    dp_level: str = typer.Option(None, "--dp-level", help="record (DP-SGD, default) or client (noised update)."),
    dp_accountant: str = typer.Option(None, "--dp-accountant", help="rdp (default) or prv."),
    attack: str = typer.Option(
        None, "--attack", help="Misbehave on purpose, to exercise the federation's defences (demos and tests only): "
        "label-flip, sign-flip, scale10, scale100, same-value, copy, copy-noise, free-ride, free-ride-noise."
    ),
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
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Wait for rounds, train on local flows, submit encoded updates."""
    from fedledger.federation import Descriptor
    from fedledger.updates import CodecParams
    from participant.privacy import dp_from_options
    from participant.service import ParticipantService, TrainingSettings

    setup_logging(verbose)
    dp = dp_from_options(dp_epsilon, dp_delta, dp_budget, clip=dp_clip, level=dp_level, accountant=dp_accountant)
    cfg = _chain(config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor)
    cfg = cfg.with_overrides(
        training={"epochs": epochs, "batch_size": batch_size, "lr": lr, "mu": mu, "absent_class_scale": absent_class_scale}
    )
    account = _account(keystore, password_file, key_env)
    st = open_configured_store(cfg)
    desc = Descriptor.from_bytes(st.get(require(cfg.federation.descriptor, "federation descriptor", "--descriptor")))
    local = load_local_flows(data, data_format, desc)
    t = cfg.training
    with _progress(enabled=not events) as (on_event, on_progress):
        service = ParticipantService(
            attach_ledger(cfg, account), st, desc, local, state_dir=state_dir,
            settings=TrainingSettings(t.epochs, t.batch_size, t.lr, t.mu, t.absent_class_scale, CodecParams.parse(codec), dp=dp,
                                      attack=attack),
            poll_seconds=cfg.federation.poll_seconds, on_event=_event_printer(events) if events else on_event,
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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


def load_local_flows(path: Path, data_format: str, desc):  # noqa: ANN001, ANN201
    """Read an organisation's flows in the federation's encoding."""
    from fedledger.federation import load_flowset

    if data_format == "flowset" or path.suffix == ".flowset":
        from fedledger.data.errors import DataError

        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read flow file {path}: {exc.strerror}") from None
        return load_flowset(blob, desc.spec)
    from fedledger.config import ConfigError
    from fedledger.data import load_dataset  # the loaders apply the format's schema
    from fedledger.data.schema import Normaliser

    if data_format not in DATA_FORMATS:
        raise ConfigError(f"unknown data format {data_format!r}", hint=f"use one of {', '.join(DATA_FORMATS)}")
    if desc.normaliser is None:
        raise ConfigError(
            f"this federation fixed no normalisation for raw {data_format} files",
            hint="its admin deploys with --stats from every member (`fedledger participant stats`), or members use flow sets",
        )
    # Never normalise from this party's own rows: the federation's normaliser comes from everyone's merged statistics.
    train, _ = load_dataset(data_format, path, None, test_fraction=0.0, normaliser=Normaliser.from_dict(desc.normaliser))
    return train


@participant_app.command("stats")
def participant_stats(
    data: Path = typer.Option(..., "--data", help="Local flow records in a raw format."),
    data_format: str = typer.Option(..., "--data-format", help="nsl-kdd, unsw-nb15 or cicids2017."),
    out: Path = typer.Option(..., "--out", help="Write the aggregate statistics (JSON) here."),
) -> None:
    """Aggregate statistics of local flows (count, sums, sums of squares) for the federation's normalisation.

    Only these sums leave the organisation, never a row; the admin merges every member's file at deploy time.
    """
    from fedledger.data import local_stats

    stats, report = local_stats(data_format, data)
    out.write_text(json.dumps(stats.to_dict()), encoding="utf-8")
    console.print(f"wrote statistics of {stats.count:,} flows ({report.skipped} rows skipped) to {out}")


def _event_printer(enabled: bool):  # noqa: ANN202
    def emit(kind: str, info: dict) -> None:
        if enabled:
            sys.stdout.write(json.dumps({"event": kind, **{k: v for k, v in info.items() if _jsonable(v)}}) + "\n")
            sys.stdout.flush()

    return emit


def _jsonable(v) -> bool:  # noqa: ANN001
    return isinstance(v, (str, int, float, bool, type(None), list, dict))


def register_commands(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("register")(register)
    app.add_typer(coordinator_app, name="coordinator")
    app.add_typer(participant_app, name="participant")
