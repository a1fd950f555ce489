"""``fedledger ipfs …``: add, cat, export and import content as ``ipfs`` does, in Kubo's words.

``pin ls`` lists the pinned roots, ``dag export`` / ``dag import`` move DAGs as CAR files;
the earlier names ``ls``, ``export-car`` and ``import-car`` still work (hidden).

The store is the one ``ipfs.open_store`` picks: ``--store DIR`` or ``--ipfs-api
ADDR`` if given, else $FEDLEDGER_STORE, else $IPFS_API, else the default embedded
store. CIDs printed here are the ones ``ipfs add`` prints for the same bytes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer

from ipfs import cid_to_digest, digest_to_cid, open_store
from ipfs.builder import build
from ipfs.car import export_car, import_car
from ipfs.errors import InvalidCID, StoreError

app = typer.Typer(
    help="The content store (embedded, or a Kubo node): CIDs identical to `ipfs add`.",
    no_args_is_help=True,
)
pin_app = typer.Typer(help="Pinned content.", no_args_is_help=True)
dag_app = typer.Typer(help="DAGs as CAR files.", no_args_is_help=True)
app.add_typer(pin_app, name="pin")
app.add_typer(dag_app, name="dag")

_STORE_HELP = "Embedded store directory (default: $FEDLEDGER_STORE, else ~/.local/share/fedledger/store)."
_API_HELP = "Kubo RPC API as multiaddr or URL, e.g. /ip4/127.0.0.1/tcp/5001 (default: $IPFS_API)."

StoreOption = typer.Option(None, "--store", metavar="DIR", help=_STORE_HELP)
ApiOption = typer.Option(None, "--ipfs-api", metavar="ADDR", help=_API_HELP)


def _open(store: Optional[Path], api: Optional[str]):
    return open_store(store=store, api=api)


@app.command()
def add(
    file: str = typer.Argument(..., metavar="FILE", help="File to add ('-' reads standard input)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", "-Q", "--quieter", help="Print only the CID."),
    only_hash: bool = typer.Option(False, "-n", "--only-hash", help="Compute the CID without storing anything."),
    store: Optional[Path] = StoreOption,
    ipfs_api: Optional[str] = ApiOption,
) -> None:
    """Add a file; print its CID (the one `ipfs add` prints)."""
    name = "-" if file == "-" else Path(file).name
    with _input(file) as stream:
        if only_hash:
            cid, _ = build(stream)  # `ipfs add -n` needs no store at all
        else:
            with _open(store, ipfs_api) as target:
                cid = target.put(stream)
    typer.echo(cid if quiet else f"added {cid} {name}")


@app.command()
def cat(
    cid: str = typer.Argument(..., help="CID of the content."),
    store: Optional[Path] = StoreOption,
    ipfs_api: Optional[str] = ApiOption,
) -> None:
    """Write the content's bytes to standard output, verified block by block."""
    out = sys.stdout.buffer
    with _open(store, ipfs_api) as source:
        source.get_to(cid, out)
    out.flush()


@dag_app.command("export")
def dag_export(
    cid: str = typer.Argument(..., help="Root CID of the DAG to export."),
    out: str = typer.Argument("-", metavar="[OUT]", help="CAR file to write (default '-': standard output, as `ipfs dag export`)."),
    store: Optional[Path] = StoreOption,
    ipfs_api: Optional[str] = ApiOption,
) -> None:
    """Export the DAG under CID as a CAR v1 file (`ipfs dag import` reads it)."""
    export_car_cmd(cid, out, store, ipfs_api)


@app.command("export-car", hidden=True)
def export_car_cmd(
    cid: str = typer.Argument(..., help="Root CID of the DAG to export."),
    out: str = typer.Argument(..., metavar="OUT", help="CAR file to write ('-' for standard output)."),
    store: Optional[Path] = StoreOption,
    ipfs_api: Optional[str] = ApiOption,
) -> None:
    """Export the DAG under CID as a CAR v1 file (`ipfs dag import` reads it)."""
    with _open(store, ipfs_api) as source:
        if out == "-":
            export_car(source, cid, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        target = Path(out)
        # Written beside the target and renamed, so a failed export leaves no half file.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
        try:
            with os.fdopen(fd, "wb") as fh:
                count = export_car(source, cid, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    typer.echo(f"exported {cid} ({count} blocks) to {target}", err=True)


@dag_app.command("import")
@app.command("import-car", hidden=True)
def import_car_cmd(
    file: str = typer.Argument(..., metavar="FILE", help="CAR v1 file to import ('-' reads standard input)."),
    store: Optional[Path] = StoreOption,
    ipfs_api: Optional[str] = ApiOption,
) -> None:
    """Import every block of a CAR v1 file (e.g. from `ipfs dag export`), verified, and pin its roots."""
    with _input(file) as stream, _open(store, ipfs_api) as target:
        roots = import_car(target, stream, name=file)
    for root in roots:
        typer.echo(root)


@pin_app.command("ls")
def pin_ls(
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only the CIDs."),
    store: Optional[Path] = StoreOption,
    ipfs_api: Optional[str] = ApiOption,
) -> None:
    """List the pinned roots, as `ipfs pin ls` does ("CID recursive": a pin keeps the whole DAG)."""
    with _open(store, ipfs_api) as source:
        for cid in source.list():
            typer.echo(cid if quiet else f"{cid} recursive")


@app.command("ls", hidden=True)
def ls_cmd(store: Optional[Path] = StoreOption, ipfs_api: Optional[str] = ApiOption) -> None:
    """List the pinned roots (the earlier name of `pin ls -q`; Kubo's `ipfs ls` lists a directory's links)."""
    pin_ls(True, store, ipfs_api)


@app.command()
def serve(
    listen: str = typer.Option(
        "/ip4/127.0.0.1/tcp/5101", "--listen", metavar="ADDR",
        help="Where to listen: a multiaddr or HOST:PORT (default: loopback only).",
    ),
    store: Optional[Path] = StoreOption,
) -> None:
    """Serve the embedded store read-only to the federation's other members, until stopped.

    Answers the read half of Kubo's RPC API (version, block/get, block/stat, cat, pin ls) from
    this directory's blocks only, and refuses every write. Other members list it as one of
    their [store] peers, or read from it with --ipfs-api.
    """
    from ipfs import EmbeddedStore, default_store_dir
    from ipfs.serve import StoreServer, listen_address

    host, port = listen_address(listen)
    directory = store or os.environ.get("FEDLEDGER_STORE") or default_store_dir()
    with StoreServer(EmbeddedStore(directory), host, port) as server:
        typer.echo(f"serving {directory} read-only at {server.url}/api/v0", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


@app.command("check-swarm")
def check_swarm(
    repo: Optional[Path] = typer.Option(None, "--repo", metavar="DIR", help="The Kubo repository (default: $IPFS_PATH, else ~/.ipfs)."),
) -> None:
    """Check that a Kubo node is set up as a member's node of a private swarm (exit 1 if not).

    Reads the repository's config and swarm.key: a pre-shared swarm key, no bootstrap peers,
    no public routing, no CID announcements, no AutoConf, the RPC API on loopback, the other
    members as peers (docs/store.md).
    """
    from ipfs.swarm_check import check_repo

    path = repo or Path(os.environ.get("IPFS_PATH") or Path.home() / ".ipfs")
    findings = check_repo(path)
    for f in findings:
        typer.echo(f"{'ok  ' if f.ok else 'FAIL'} {f.setting}: {f.detail}")
    bad = [f.setting for f in findings if not f.ok]
    if bad:
        raise StoreError(
            f"{path} is not a private member node: {', '.join(bad)}",
            hint="docs/store.md (a Kubo node per organisation) gives each setting",
        )


@app.command()
def digest(cid: str = typer.Argument(..., help="A CIDv0 (Qm…).")) -> None:
    """Print the 32-byte digest the ledger records for CID, as 0x-hex."""
    typer.echo("0x" + cid_to_digest(cid).hex())


@app.command("cid")
def cid_cmd(digest_hex: str = typer.Argument(..., metavar="DIGEST", help="32-byte digest as hex (0x optional).")) -> None:
    """Print the CIDv0 for a 32-byte digest read from the ledger."""
    text = digest_hex[2:] if digest_hex.lower().startswith("0x") else digest_hex
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise InvalidCID(digest_hex, "the digest is not hex") from None
    typer.echo(digest_to_cid(raw))


class _input:
    """A binary input stream for FILE or '-', with a typed error for a bad path."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.fh = None

    def __enter__(self):
        if self.file == "-":
            return sys.stdin.buffer
        try:
            self.fh = open(self.file, "rb")
        except FileNotFoundError:
            raise StoreError(f"{self.file}: no such file", hint="check the path") from None
        except IsADirectoryError:
            raise StoreError(f"{self.file} is a directory; only files can be added", hint="add the files one by one") from None
        except OSError as exc:
            raise StoreError(f"cannot read {self.file}: {exc.strerror}") from None
        return self.fh

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()
