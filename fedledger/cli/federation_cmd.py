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
from fedledger.config import dump_config

DATA_FORMATS = ("flowset", "synthetic", "nsl-kdd", "unsw-nb15", "cicids2017")


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
    from federation.flowset import load_flowset
    from fedledger.config import ConfigError
    from fedledger.deploy import create_federation
    from flows import load_dataset, schema_for
    from flows.synthetic import generate

    cfg = chain_config(config, rpc_url, None, chain_id, store, ipfs_api)
    account = load_signer(keystore, password_file, key_env)
    st = open_configured_store(cfg)
    normaliser = None
    if stats:
        from flows.schema import LocalStats, Normaliser, merge

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
    cfg = chain_config(config, rpc_url, ledger, chain_id, None, None)
    account = load_signer(keystore, password_file, key_env)
    tx = attach_ledger(cfg, account).register_participant(participant, name)
    console.print(f"registered {participant} ({name}); gas {tx.gas_used:,}")



def register_commands(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
    app.command("register")(register)
