"""`fedledger flows convert`: a raw NSL-KDD, UNSW-NB15 or CICIDS2017 export as a flow set.

The flows are encoded with the federation's normaliser (read from its descriptor, or
merged from every member's statistics before the federation exists), so the flow set
is what `participant run --data X.flowset` trains on, with nothing fitted on local rows.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fedledger.cli.common import (
    ApiOpt,
    ConfigOpt,
    DescriptorOpt,
    StoreOpt,
    console,
    federation_config,
    open_configured_store,
)

app = typer.Typer(help="Flow files: turn raw exports into flow sets.", no_args_is_help=True)


@app.command("convert")
def flows_convert(
    data: Path = typer.Option(..., "--data", help="The raw export (a file, or a folder of *.csv / *.txt files)."),
    data_format: str = typer.Option(..., "--data-format", help="nsl-kdd, unsw-nb15 or cicids2017."),
    out: Path = typer.Option(..., "--out", help="The flow set to write (X.flowset)."),
    stats: list[Path] = typer.Option(
        None, "--stats", help="Every member's statistics file (repeat): the normaliser before the federation exists."
    ),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Skip and count malformed rows instead of stopping."),
    config: Path = ConfigOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    descriptor: str = DescriptorOpt,
) -> None:
    """Encode a raw export with the federation's normaliser and write it as a flow set."""
    from federation.descriptor import MAX_DESCRIPTOR_BYTES, Descriptor
    from fedledger.cli.common import require
    from fedledger.flowfiles import (
        encode_raw,
        normaliser_from_descriptor,
        normaliser_from_stats,
        write_flowset,
    )

    if stats:
        normaliser = normaliser_from_stats(stats, data_format)
        source = f"the statistics of {len(stats)} member(s)"
    else:
        cfg = federation_config(config, store=store, ipfs_api=ipfs_api, descriptor=descriptor)
        cid = require(cfg.federation.descriptor, "federation descriptor (or --stats)", "--descriptor")
        desc = Descriptor.from_bytes(open_configured_store(cfg).get(cid, max_bytes=MAX_DESCRIPTOR_BYTES))
        normaliser = normaliser_from_descriptor(desc, data_format)
        source = f"descriptor {cid}"
    flows, report = encode_raw(data, data_format, normaliser, skip_bad_rows=skip_bad_rows)
    write_flowset(flows, out)
    skipped = f", {report.skipped:,} bad rows skipped" if report.skipped else ""
    console.print(f"wrote {out}: {len(flows):,} flows ({flows.schema_id}, normalised with {source}{skipped})", highlight=False)
