"""Commands that create and govern a federation: deploy, register."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from fedledger.cli.common import (
    ApiOpt,
    ChainIdOpt,
    ConfigOpt,
    KeyEnvOpt,
    KeystoreOpt,
    LedgerOpt,
    PasswordFileOpt,
    RpcOpt,
    StoreOpt,
    attach_ledger,
    chain_config,
    console,
    load_signer,
    open_configured_store,
)
from fedledger.config import ConfigError, dump_config

DATA_FORMATS = ("flowset", "synthetic", "nsl-kdd", "unsw-nb15", "cicids2017")


def deploy(
    validation: Path = typer.Option(None, "--validation", exists=True, dir_okay=False, help="Public validation set (a flow set, or a raw file with --validation-format). Default: synthetic."),
    validation_format: str = typer.Option("flowset", "--validation-format", help=f"One of {', '.join(DATA_FORMATS)}."),
    stats: list[Path] = typer.Option(None, "--stats", help="A member's statistics file (repeat for every member): fixes the normalisation."),
    name: str = typer.Option("fedledger", "--name", help="Federation name (goes into the descriptor)."),
    min_updates: int = typer.Option(1, "--min-updates", help="Quorum: updates needed to finalise a round."),
    strategy: str = typer.Option(
        None, "--strategy",
        help="Aggregation: fedavg-classwise (default; fedavg under secure aggregation), fedavg, fedavgm, fedadam, median, "
             "trimmed-mean, multi-krum.",
    ),
    sample_cap: int = typer.Option(
        None, "--sample-cap", help="Samples beyond this add no weight to a member's update. Default: the mean of the --stats counts."
    ),
    scoring: str = typer.Option("leave-one-out", "--scoring", help="Contribution scores: leave-one-out or gtg-shapley."),
    hidden: str = typer.Option("64,32", "--hidden", help="Hidden layer sizes of the MLP."),
    seed: int = typer.Option(0, "--seed", help="Federation seed (genesis weights, training seeds)."),
    coordinator: str = typer.Option(None, "--coordinator", help="Coordinator address: a key other than the admin's."),
    dev_same_key: bool = typer.Option(
        False, "--dev-same-key", help="Development only: let the admin's key coordinate too (no separation of roles)."
    ),
    holdouts: int = typer.Option(5, "--holdouts", help="Scoring hold-outs drawn from the validation pool (0: score on public data)."),
    holdout_dir: Path = typer.Option(None, "--holdout-dir", help="Where the hold-outs are written, for the coordinator to keep."),
    reveal_seconds: int = typer.Option(30, "--reveal-seconds", help="How long the coordinator waits for members' bytes after submissions close."),
    abort_grace: int = typer.Option(3600, "--abort-grace", help="Seconds after a round's deadline from which any member may abort it."),
    privacy: str = typer.Option(
        "public", "--privacy", help="public, or secure-aggregation: members' updates are masked and only their sum is revealed."
    ),
    max_members: int = typer.Option(None, "--max-members", help="Secure aggregation: the most members a round may have (n)."),
    threshold: int = typer.Option(None, "--threshold", help="Secure aggregation: shares that rebuild a secret (t > n/2; default n/2 + 1)."),
    clip: float = typer.Option(1.0, "--clip", help="Secure aggregation: every coordinate of an update is clipped to [-clip, clip]."),
    weight_cap: int = typer.Option(10_000, "--weight-cap", help="Secure aggregation: samples beyond this do not add weight."),
    share_seconds: int = typer.Option(60, "--share-seconds", help="Secure aggregation: how long each round's share phase lasts."),
    pretrain: Path = typer.Option(
        None, "--pretrain", exists=True, dir_okay=False, help="Pretrain the genesis model on this public flow set (format as --validation); the audit re-runs it."
    ),
    pretrain_epochs: int = typer.Option(5, "--pretrain-epochs", help="Epochs of the genesis pretraining."),
    parent_ledger: str = typer.Option(
        None, "--parent-ledger", help="Start from a global model of this federation's ledger (same model spec); lineage is recorded."
    ),
    parent_round: int = typer.Option(None, "--parent-round", help="The parent's round to start from. Default: its latest finalised."),
    parent_rpc: str = typer.Option(None, "--parent-rpc", help="JSON-RPC URL of the parent's chain. Default: this chain."),
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
    privacy_section = secure_privacy(privacy, max_members, threshold, clip=clip, weight_cap=weight_cap, share_seconds=share_seconds)
    from federation import recipe
    from federation.descriptor import InvalidDescriptor
    from federation.flowset import load_flowset
    from federation.genesis import describe_genesis
    from fedledger.deploy import create_federation, parent_genesis
    from flows import load_dataset, schema_for
    from flows.schema import LocalStats, Normaliser, merge
    from flows.synthetic import generate

    cfg = chain_config(config, rpc_url, None, chain_id, store, ipfs_api)
    account = load_signer(keystore, password_file, key_env)
    if coordinator is None and not dev_same_key:
        raise ConfigError(
            "no coordinator given: the coordinator must be another key than the admin's",
            hint="pass --coordinator ADDRESS (create a key with `fedledger keys new`), or --dev-same-key on a test chain",
        )
    if coordinator is not None and coordinator.lower() == account.address.lower() and not dev_same_key:
        raise ConfigError("the coordinator is the admin's own key", hint="use a separate key, or --dev-same-key on a test chain")
    if holdouts and holdout_dir is None:
        raise ConfigError("the scoring hold-outs need a directory", hint="pass --holdout-dir DIR (give it to the coordinator), or --holdouts 0")
    st = open_configured_store(cfg)
    normaliser = None
    strategy = strategy or recipe.default_strategy(privacy)
    strategy_params: dict = {} if sample_cap is None else {"sample_cap": sample_cap}
    if stats:
        schema = schema_for(validation_format)
        merged = merge(LocalStats.from_dict(json.loads(p.read_text(encoding="utf-8"))) for p in stats)
        normaliser = Normaliser.from_stats(schema, merged)
        # the members' record counts are known: cap each one's weight at the mean (the recipe's sample cap)
        strategy_params = recipe.with_mean_cap(strategy, strategy_params, merged.count, len(stats))
    parent = None
    hidden_sizes = tuple(int(h) for h in hidden.split(",") if h.strip())
    if parent_ledger is not None:
        if pretrain is not None:
            raise ConfigError("--pretrain and --parent-ledger both make the genesis model", hint="pass one of them")
        from contracts.client import Ledger

        upstream = Ledger.attach(parent_rpc or cfg.chain.rpc_url, parent_ledger)
        parent, parent_desc = parent_genesis(upstream, st, parent_round)
        if normaliser is not None and normaliser.to_dict() != parent_desc.normaliser:
            raise ConfigError("--stats give another normalisation than the parent federation's", hint="drop --stats: the parent's carries over")
        hidden_sizes = parent_desc.spec.hidden  # the parent's weights fit only its own layer sizes
        if parent_desc.normaliser is not None:
            normaliser = Normaliser.from_dict(parent_desc.normaliser)

    def flow_file(path: Path | None, what: str):  # noqa: ANN202
        if path is None:
            return generate(4000, seed + 7919)
        if validation_format == "flowset":
            try:
                return load_flowset(path.read_bytes())
            except InvalidDescriptor as exc:
                raise ConfigError(f"{what} file {path}: {exc.args[0]}",
                                  hint="make a flow set with `fedledger flows convert`, or pass --validation-format") from None
        if normaliser is None:
            raise ConfigError(f"a raw {what} file needs the members' --stats to fix its normalisation")
        return load_dataset(validation_format, path, None, test_fraction=0.0, normaliser=normaliser)[0]

    data = flow_file(validation, "validation")
    fed = create_federation(
        rpc_url=cfg.chain.rpc_url, admin=account, store=st, name=name, validation=data,
        hidden=hidden_sizes, strategy=strategy, strategy_params=strategy_params, min_updates=min_updates,
        seed=seed, coordinator=coordinator or account.address, expected_chain_id=cfg.chain.chain_id,
        normaliser=normaliser.to_dict() if normaliser is not None else None, scoring=scoring, holdouts=holdouts,
        holdout_dir=holdout_dir, reveal_seconds=reveal_seconds, abort_grace=abort_grace, privacy=privacy_section,
        pretrain=flow_file(pretrain, "pretraining") if pretrain is not None else None,
        pretrain_recipe={"epochs": pretrain_epochs}, parent=parent,
    )  # fmt: skip
    # chain_id goes into the file too: everyone who receives it then refuses any other chain.
    cfg = cfg.with_overrides(
        chain={"ledger": fed.ledger.address, "chain_id": fed.ledger.chain_id}, federation={"descriptor": fed.descriptor_cid}
    )
    if out:
        out.write_text(dump_config(cfg), encoding="utf-8")
    table = Table(title="federation created", show_header=False)
    for k, v in (
        ("ledger", fed.ledger.address), ("descriptor", fed.descriptor_cid), ("genesis model", fed.genesis_cid),
        ("validation set", fed.validation_cid), ("privacy", fed.descriptor.privacy_mode),
        ("genesis", describe_genesis(fed.descriptor.genesis)),
        ("deploy gas", f"{fed.deploy_gas:,}"), ("config", str(out or "-")),
    ):  # fmt: skip
        table.add_row(k, v)
    console.print(table)
    print(fed.ledger.address)


def secure_privacy(mode: str, max_members: int | None, threshold: int | None, **params: object) -> dict | None:
    """The descriptor's privacy section for ``--privacy`` (None: public)."""
    from federation.secagg import SecureParams

    if mode == "public":
        if max_members is not None or threshold is not None:
            raise ConfigError("--max-members and --threshold are secure-aggregation parameters", hint="add --privacy secure-aggregation")
        return None
    if mode != "secure-aggregation":
        raise ConfigError(f"unknown privacy mode {mode!r}", hint="use --privacy public or --privacy secure-aggregation")
    if max_members is None:
        raise ConfigError("secure aggregation needs the most members a round may have", hint="pass --max-members N")
    return SecureParams.for_members(max_members, threshold, **params).to_privacy()  # type: ignore[arg-type]


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
    cfg = chain_config(config, rpc_url, ledger, chain_id, None, None)
    account = load_signer(keystore, password_file, key_env)
    tx = attach_ledger(cfg, account).register_participant(participant, name)
    console.print(f"registered {participant} ({name}); gas {tx.gas_used:,}")


admin_app = typer.Typer(help="Govern the federation (admin only): members, the coordinator, rounds, the lineage.", no_args_is_help=True)


def _admin(config, rpc_url, ledger, chain_id, keystore, password_file, key_env):  # noqa: ANN001, ANN202
    cfg = chain_config(config, rpc_url, ledger, chain_id, None, None)
    return attach_ledger(cfg, load_signer(keystore, password_file, key_env))


@admin_app.command("remove-participant")
def remove_participant(
    participant: str = typer.Argument(..., help="The member's address."),
    config: Path = ConfigOpt, rpc_url: str = RpcOpt, ledger: str = LedgerOpt, chain_id: int = ChainIdOpt,
    keystore: Path = KeystoreOpt, password_file: Path = PasswordFileOpt, key_env: str = KeyEnvOpt,
) -> None:
    """End a member's membership (its history stays on record)."""
    tx = _admin(config, rpc_url, ledger, chain_id, keystore, password_file, key_env).remove_participant(participant)
    console.print(f"removed {participant}; gas {tx.gas_used:,}")


@admin_app.command("set-coordinator")
def set_coordinator(
    coordinator: str = typer.Argument(..., help="The new coordinator's address."),
    config: Path = ConfigOpt, rpc_url: str = RpcOpt, ledger: str = LedgerOpt, chain_id: int = ChainIdOpt,
    keystore: Path = KeystoreOpt, password_file: Path = PasswordFileOpt, key_env: str = KeyEnvOpt,
) -> None:
    """Appoint another coordinator."""
    tx = _admin(config, rpc_url, ledger, chain_id, keystore, password_file, key_env).set_coordinator(coordinator)
    console.print(f"coordinator is now {coordinator}; gas {tx.gas_used:,}")


@admin_app.command("abort")
def abort(
    round_id: int = typer.Argument(..., help="The open round."),
    config: Path = ConfigOpt, rpc_url: str = RpcOpt, ledger: str = LedgerOpt, chain_id: int = ChainIdOpt,
    keystore: Path = KeystoreOpt, password_file: Path = PasswordFileOpt, key_env: str = KeyEnvOpt,
) -> None:
    """Abort an open round that nobody closed, once its deadline plus the grace period has passed (any member may too)."""
    tx = _admin(config, rpc_url, ledger, chain_id, keystore, password_file, key_env).abort_round(round_id)
    console.print(f"aborted round {round_id}; gas {tx.gas_used:,}")


@admin_app.command("rebase")
def rebase(
    round_id: int = typer.Argument(..., help="The finalized round to start again from (0 = genesis)."),
    config: Path = ConfigOpt, rpc_url: str = RpcOpt, ledger: str = LedgerOpt, chain_id: int = ChainIdOpt,
    keystore: Path = KeystoreOpt, password_file: Path = PasswordFileOpt, key_env: str = KeyEnvOpt,
) -> None:
    """Move the lineage's head back to an earlier finalized round: the way back from a bad global model."""
    tx = _admin(config, rpc_url, ledger, chain_id, keystore, password_file, key_env).rebase_lineage(round_id)
    console.print(f"the next round starts from round {round_id}'s model; gas {tx.gas_used:,}")


def register_commands(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("register")(register)
    app.add_typer(admin_app, name="admin")
