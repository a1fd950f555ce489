"""`fedledger detect`: score local flow files with the federation's verified global model."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
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
    require,
)


def detect(
    flows: list[Path] = typer.Argument(..., help="Flow files (or directories of them) in the federation's schema."),
    out: Path = typer.Option(Path("alerts.jsonl"), "--out", "-o", help="Alerts file (JSON lines); '-' for stdout."),
    data_format: str = typer.Option(None, "--data-format", help="nsl-kdd, unsw-nb15, cicids2017 or flowset (default: the federation's schema)."),
    round_id: int = typer.Option(None, "--round", help="Score with this finalised round's global model (0 = genesis; default: the latest)."),
    model_cid: str = typer.Option(None, "--model", help="Score with this model CID, if a finalised round published it."),
    require_audit: bool = typer.Option(False, "--require-audit", help="Audit the model's round first; refuse to score if it fails."),
    include_normal: bool = typer.Option(False, "--all", help="Write a line for every flow, not only those predicted as attacks."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Skip and count malformed rows instead of stopping at the first."),
    block_mb: float = typer.Option(2.0, "--block-mb", help="Read the files this many MiB at a time (bounds memory)."),
    max_flowset_mb: float = typer.Option(1024.0, "--max-flowset-mb", help="Largest flow set read (flow sets are read whole)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    descriptor: str = DescriptorOpt,
) -> None:
    """Verify the global model against the chain, score the flows in one streaming pass, write alerts."""
    from fedledger.config import ConfigError
    from fedledger.intel.detect import detect as run
    from fedledger.intel.detect import federation_encoding, federation_format
    from fedledger.intel.provenance import require_audit as audit_first
    from fedledger.intel.provenance import resolve_model
    from flows import LoadReport, MalformedRow

    if not 0.0625 <= block_mb <= 1024:
        raise ConfigError(f"--block-mb {block_mb} is out of range", hint="use 0.0625 to 1024")
    cfg = chain_config(config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor)
    led = attach_ledger(cfg)
    st = open_configured_store(cfg)
    desc_cid = require(cfg.federation.descriptor, "federation descriptor", "--descriptor")
    model = resolve_model(led, st, desc_cid, round_id=round_id, model_cid=model_cid)
    prov = model.provenance
    console.print(f"model: round {prov.round} of {prov.ledger} on chain {prov.chain_id}, {prov.model} ({prov.schema_id}), "
                  "verified against the chain")  # fmt: skip
    if require_audit:
        with console.status(f"auditing round {prov.round}…"):
            model = audit_first(model, led, st)
        console.print(f"audit of round {prov.round}: passed")
    fmt = data_format or ("flowset" if all(p.suffix == ".flowset" for p in flows) else federation_format(model.descriptor))
    report = LoadReport()
    if fmt == "flowset":
        batches, total = _flowset_batches(flows, model, int(max_flowset_mb * (1 << 20)))
    else:
        from fedledger.intel.detect import file_batches

        schema, normaliser = federation_encoding(model.descriptor, fmt or "")
        total = sum(_size(p) for p in flows)
        batches = file_batches(flows, fmt or "", schema, normaliser, on_bad_row="skip" if skip_bad_rows else "error",
                               block_bytes=int(block_mb * (1 << 20)), report=report)  # fmt: skip
    try:
        with _output(out) as sink, _progress(total) as advance:
            summary = run(batches, model, sink, include_normal=include_normal, on_batch=advance)
    except MalformedRow as exc:
        exc.hint = "fix or remove the row, or pass --skip-bad-rows to skip and count malformed rows"
        raise
    summary.report = report if fmt != "flowset" else None
    if as_json:
        print(json.dumps({"provenance": model.provenance.to_dict(), "out": str(out), **summary.to_dict()}, indent=2))
        return
    rate = summary.flows / summary.seconds if summary.seconds else 0.0
    console.print(f"scored {summary.flows:,} flows in {summary.seconds:.1f} s ({rate:,.0f} flows/s): {summary.alerts:,} alerts"
                  + (f" ({', '.join(f'{k} {v:,}' for k, v in sorted(summary.by_family.items()))})" if summary.alerts else "")
                  + ("" if str(out) == "-" else f", written to {out}"))  # fmt: skip
    if report.skipped:
        console.print(f"[yellow]{report.skipped:,} malformed rows skipped[/] (first: {report.reasons[0]})")


def _flowset_batches(paths: list[Path], model, max_bytes: int):  # noqa: ANN001, ANN202
    from federation.flowset import load_flowset
    from fedledger.intel.detect import dataset_batches
    from flows import DataError

    datasets = []
    for p in paths:
        size = _size(p)
        if size > max_bytes:
            raise DataError(f"flow set {p} is {size:,} bytes, over --max-flowset-mb", hint="flow sets are read whole; raise the limit or split the set")
        try:
            blob = p.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read flow set {p}: {exc.strerror or exc}") from None
        datasets.append((p.name, load_flowset(blob, model.spec)))

    def batches():  # noqa: ANN202
        for name, data in datasets:
            yield from dataset_batches(data, file=name)

    return batches(), sum(len(d) * d.features.shape[1] * 4 for _, d in datasets)


def _size(p: Path) -> int:
    from flows import DataError

    try:
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    except OSError as exc:
        raise DataError(f"cannot read {p}: {exc.strerror or exc}", hint="check the path") from None


@contextmanager
def _output(out: Path):  # noqa: ANN202
    if str(out) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    from fedledger.intel.errors import IntelError

    tmp = out.with_name(out.name + ".part")
    try:
        fh = open(tmp, "w", encoding="utf-8", buffering=1 << 20)  # noqa: SIM115
    except OSError as exc:
        raise IntelError(f"cannot write {out}: {exc.strerror or exc}", hint="check the directory and its permissions") from None
    try:
        with fh:
            yield fh
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half-written alerts file must not look complete
        raise
    tmp.replace(out)


@contextmanager
def _progress(total: int):  # noqa: ANN202
    """A rich progress bar (on stderr) over the bytes of input read, with the running counts."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("scoring"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[counts]}"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:  # fmt: skip
        task = bar.add_task("scoring", total=total or None, counts="")

        def advance(summary, batch) -> None:  # noqa: ANN001
            bar.update(task, advance=batch.bytes_read, counts=f"{summary.flows:,} flows, {summary.alerts:,} alerts")

        yield advance


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)
