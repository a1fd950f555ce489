"""`fedledger explorer`: the audit explorer of a federation, in the browser, on loopback."""

from __future__ import annotations

from pathlib import Path

import typer

from fedledger.cli.common import (
    ApiOpt,
    ChainIdOpt,
    ConfigOpt,
    DescriptorOpt,
    LedgerOpt,
    RpcOpt,
    StoreOpt,
    attach_ledger,
    chain_config,
    console,
    open_configured_store,
)  # fmt: skip


def explorer(
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    descriptor: str = DescriptorOpt,
    port: int = typer.Option(8600, "--port", help="Port on 127.0.0.1 (0: any free port). The explorer never binds another address."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Where audit verdicts are cached (default: $XDG_CACHE_HOME/fedledger/explorer)."),
    poll_seconds: float = typer.Option(3.0, "--poll-seconds", help="How often the chain is read for new rounds."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds any one read of the chain or the store may take."),
    reaudit: bool = typer.Option(False, "--reaudit", help="Ignore cached verdicts and audit every round again."),
    dp_budget: float = typer.Option(None, "--dp-budget", help="The consortium's composed-epsilon budget per member, shown beside each member's spend."),
) -> None:
    """Serve a read-only web explorer of the federation: rounds with their audit verdicts, members, lineage, downloads."""
    from fedledger.explorer import ExplorerSettings, serve_until_interrupted

    cfg = chain_config(config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor)
    settings = ExplorerSettings(
        port=port, poll_seconds=poll_seconds, read_timeout=timeout, fetch_timeout=timeout, cache_dir=cache_dir,
        reaudit=reaudit, dp_budget=dp_budget,
    )  # fmt: skip
    serve_until_interrupted(
        attach_ledger(cfg), open_configured_store(cfg), descriptor_cid=cfg.federation.descriptor, settings=settings, console=console
    )


def register(app: typer.Typer) -> None:
    app.command("explorer")(explorer)
