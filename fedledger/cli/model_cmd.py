"""`fedledger model`: get a federation's model out, verified against the chain."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from faults import FedLedgerError
from fedledger.cli.common import (
    ApiOpt,
    ChainIdOpt,
    ConfigOpt,
    LedgerOpt,
    RpcOpt,
    StoreOpt,
    attach_ledger,
    console,
    federation_config,
    open_configured_store,
)  # fmt: skip

app = typer.Typer(help="Export the federation's models.", no_args_is_help=True)

FORMATS = {".safetensors": "the canonical model file", ".pt": "a torch state_dict"}


class UnknownModelFormat(FedLedgerError):
    """``model export`` was asked for a file type it does not write."""


@app.command("export")
def export(
    out: Path = typer.Argument(..., help="Output file (.safetensors: the canonical file; .pt: a torch state_dict)."),
    round_id: int = typer.Option(None, "--round", help="The global model of this finalised round (default: the latest model)."),
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
) -> None:
    """Fetch a global model by its on-chain digest (verified by the store) and write it, with its spec beside it."""
    from contracts.client import RoundState
    from federation.model import load_model_bytes
    from ipfs import digest_to_cid

    if out.suffix not in FORMATS:
        raise UnknownModelFormat(
            f"{out}: model export writes {' or '.join(FORMATS)} files, not {out.suffix or 'a file without a suffix'}",
            hint=", ".join(f"{k}: {v}" for k, v in FORMATS.items()),
        )
    cfg = federation_config(config, rpc_url=rpc_url, ledger=ledger, chain_id=chain_id, store=store, ipfs_api=ipfs_api)
    led = attach_ledger(cfg)
    if round_id is None:
        digest = led.latest_model()
    else:
        info = led.get_round(round_id)
        if info.state != RoundState.FINALIZED:
            raise FedLedgerError(f"round {round_id} is {info.state.name.lower()}, not finalised: it has no global model")
        digest = info.global_model
    cid = digest_to_cid(digest)
    blob = open_configured_store(cfg).get(cid)
    spec, weights = load_model_bytes(blob)
    if out.suffix == ".pt":
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in weights.items()}, out)
    else:
        out.write_bytes(blob)
    out.with_suffix(".spec.json").write_text(json.dumps(json.loads(spec.to_json()), indent=2), encoding="utf-8")
    console.print(f"wrote {out} ({cid}, {spec.num_parameters():,} parameters) and {out.with_suffix('.spec.json')}")
