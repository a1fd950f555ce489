"""Options and connections shared by the chain-facing commands."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.logging import RichHandler

from fedledger.config import Config, ConfigError, StoreConfig, load_config

console = Console(stderr=True, soft_wrap=True)  # messages name paths and CIDs: never break them across lines

# Typer option declarations reused by every command that talks to the federation.
ConfigOpt = typer.Option(None, "--config", "-c", help="Federation TOML file (every value can be overridden below).")
RpcOpt = typer.Option(None, "--rpc-url", help="EVM JSON-RPC endpoint (default http://127.0.0.1:8545).")
LedgerOpt = typer.Option(None, "--ledger", help="FederationLedger contract address.")
ChainIdOpt = typer.Option(None, "--chain-id", help="Refuse to attach unless the chain has this id.")
StoreOpt = typer.Option(None, "--store", envvar="FEDLEDGER_STORE", help="Embedded store directory.")
ApiOpt = typer.Option(None, "--ipfs-api", envvar="IPFS_API", help="Kubo RPC address (multiaddr or URL) instead of the embedded store.")
DescriptorOpt = typer.Option(None, "--descriptor", help="CID of the federation descriptor.")
KeystoreOpt = typer.Option(None, "--keystore", help="Encrypted keystore JSON file of the signing key.")
PasswordFileOpt = typer.Option(None, "--password-file", help="File holding the keystore password (else $FEDLEDGER_KEY_PASSWORD).")
KeyEnvOpt = typer.Option("FEDLEDGER_PRIVATE_KEY", "--key-env", help="Environment variable holding a hex key (development).")


def resolve_config(config: Path | None, **overrides: dict[str, Any]) -> Config:
    return load_config(config).with_overrides(**overrides)


def federation_config(
    config: Path | None,
    *,
    rpc_url: str | None = None,
    ledger: str | None = None,
    chain_id: int | None = None,
    store: Path | None = None,
    ipfs_api: str | None = None,
    **federation: Any,
) -> Config:
    """The TOML file (if any) with the common command-line options applied on top.

    A store named on the command line replaces the file's: ``--ipfs-api`` its directory and
    peers (a Kubo node has its swarm), ``--store`` its Kubo address (the peers stay).
    """
    cfg = load_config(config)
    if ipfs_api is not None:
        cfg = replace(cfg, store=StoreConfig())
    elif store is not None:
        cfg = replace(cfg, store=replace(cfg.store, ipfs_api=None))
    return cfg.with_overrides(
        chain={"rpc_url": rpc_url, "ledger": ledger, "chain_id": chain_id},
        store={"dir": str(store) if store else None, "ipfs_api": ipfs_api},
        federation=federation,
    )


def require(value: Any, what: str, flag: str) -> Any:
    if value in (None, ""):
        raise ConfigError(f"no {what} given", hint=f"pass {flag} or set it in the federation TOML (--config)")
    return value


def attach_ledger(cfg: Config, account: Any = None):  # noqa: ANN201
    from contracts.client import Ledger

    address = require(cfg.chain.ledger, "ledger address", "--ledger")
    return Ledger.attach(cfg.chain.rpc_url, address, account=account, expected_chain_id=cfg.chain.chain_id)


def open_configured_store(cfg: Config):  # noqa: ANN201
    from ipfs import open_store

    return open_store(cfg.store.dir, cfg.store.ipfs_api, peers=cfg.store.peers or ())


def setup_logging(verbose: bool, handler: logging.Handler | None = None) -> None:
    """Log to stderr: through rich, or through ``handler`` (e.g. JSON lines)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[handler or RichHandler(console=console, show_path=False)],
    )


def status_text(kind: str, info: dict) -> str:
    """One line saying where the coordinator is in a round."""
    r = info.get("round", "")
    return {
        "opened": f"round {r}: open, waiting for updates",
        "fetching": f"round {r}: fetching {info.get('count')} updates",
        "fetched": f"round {r}: fetching updates",
        "aggregating": f"round {r}: validating, aggregating and scoring",
        "finalized": f"round {r}: finalised",
    }.get(kind, f"{kind} {r}")


def load_signer(keystore, password_file, key_env):  # noqa: ANN001, ANN202
    """The signing key from a keystore or the environment (never from argv, never shown)."""
    from fedledger.keys import (
        load_account,  # eth-account is slow to import; only commands that sign need it
    )

    return load_account(keystore=keystore, password_file=password_file, key_env=key_env)


def chain_config(config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor=None, **extra):  # noqa: ANN001, ANN202
    """The config with the chain, store and descriptor options of a command applied."""
    return federation_config(
        config, rpc_url=rpc_url, ledger=ledger, chain_id=chain_id, store=store, ipfs_api=ipfs_api,
        descriptor=descriptor, **extra,
    )  # fmt: skip


def event_printer(enabled: bool):  # noqa: ANN202
    """One JSON line per service event on stdout (``--events``), for scripts and the demo."""

    def emit(kind: str, info: dict) -> None:
        if enabled:
            sys.stdout.write(json.dumps({"event": kind, **{k: v for k, v in info.items() if _jsonable(v)}}) + "\n")
            sys.stdout.flush()

    return emit


def _jsonable(v) -> bool:  # noqa: ANN001
    return isinstance(v, (str, int, float, bool, type(None), list, dict))
