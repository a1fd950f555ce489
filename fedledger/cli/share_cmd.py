"""`fedledger share stix | taxii | misp`: what of the alerts leaves the organisation, and where it goes.

Sharing is always this explicit command. Internal addresses (RFC 1918 and every
``--internal`` range) are dropped unless ``--pseudonymise KEYFILE`` replaces them with a
keyed hash or ``--keep-internal`` shares them as they are. The provenance that goes with
the alerts is checked on chain first: their model must be the global model of their round.
"""

from __future__ import annotations

import json
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

app = typer.Typer(help="Share alerts as threat intelligence: STIX 2.1, TAXII 2.1, MISP.", no_args_is_help=True)

TAXII_PASSWORD_ENV = "FEDLEDGER_TAXII_PASSWORD"
MISP_KEY_ENV = "FEDLEDGER_MISP_KEY"

OrgOpt = typer.Option(..., "--org-name", help="The sharing organisation's name (the STIX identity / MISP creator).")
TlpOpt = typer.Option("amber", "--tlp", help="TLP 2.0 marking: clear, green, amber, amber+strict or red.")
ThresholdOpt = typer.Option(0.9, "--indicator-confidence", help="Mean confidence (0-1) a source needs to become an indicator / to_ids.")
InternalOpt = typer.Option(None, "--internal", help="A CIDR range of the organisation's own addresses (repeatable; RFC 1918 always counts).")
PseudoOpt = typer.Option(None, "--pseudonymise", help="Replace internal addresses by HMAC-SHA256 pseudonyms under the key in this file.")
KeepOpt = typer.Option(False, "--keep-internal", help="Share internal addresses as they are (default: drop them).")
AuditOpt = typer.Option(False, "--require-audit", help="Audit the alerts' round first; refuse to share if it fails (the provenance then says so).")


def _aggregate(alerts: Path, internal: list[str] | None, pseudonymise: Path | None, keep_internal: bool):  # noqa: ANN202
    from fedledger.config import ConfigError
    from fedledger.intel.redact import Redactor
    from fedledger.intel.secrets import read_pseudonym_key
    from fedledger.intel.share import load_aggregate

    if pseudonymise is not None and keep_internal:
        raise ConfigError("--pseudonymise and --keep-internal exclude each other", hint="pick one way to share internal addresses")
    if pseudonymise is not None:
        redactor = Redactor(internal or (), mode="pseudonymise", key=read_pseudonym_key(pseudonymise))
    else:
        redactor = Redactor(internal or (), mode="keep" if keep_internal else "drop")
    with console.status(f"reading {alerts}…"):
        return load_aggregate(alerts, redactor)


def _provenance(agg, audit, config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor):  # noqa: ANN001, ANN202
    from fedledger.intel.provenance import require_audit
    from fedledger.intel.share import checked_model

    cfg = chain_config(config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor)
    led, st = attach_ledger(cfg), open_configured_store(cfg)
    model = checked_model(agg, led, st, require(cfg.federation.descriptor, "federation descriptor", "--descriptor"))
    prov = model.provenance
    console.print(f"provenance: round {prov.round} of {prov.ledger} on chain {prov.chain_id}, model {prov.model} (checked on chain)")
    if audit:
        with console.status(f"auditing round {prov.round}…"):
            prov = require_audit(model, led, st).provenance
        console.print(f"audit of round {prov.round}: passed")
    return prov


def _options(org_name: str, tlp_level: str, threshold: float):  # noqa: ANN202
    from fedledger.intel.share_options import ShareOptions
    from fedledger.intel.tlp import tlp

    return ShareOptions(org_name, tlp(tlp_level), threshold)


@app.command("stix")
def share_stix(
    alerts: Path = typer.Argument(..., help="Alerts file written by `fedledger detect`."),
    out: Path = typer.Option(Path("bundle.json"), "--out", "-o", help="Where to write the STIX 2.1 bundle."),
    org_name: str = OrgOpt,
    tlp_level: str = TlpOpt,
    threshold: float = ThresholdOpt,
    internal: list[str] = InternalOpt,
    pseudonymise: Path = PseudoOpt,
    keep_internal: bool = KeepOpt,
    audit: bool = AuditOpt,
    no_validate: bool = typer.Option(False, "--no-validate", help="Skip stix2-validator (slow on very large bundles)."),
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    descriptor: str = DescriptorOpt,
) -> None:
    """A STIX 2.1 bundle of the alerts, aggregated per source address and family, TLP-marked, with provenance."""
    from fedledger.intel.share import write_stix

    opts = _options(org_name, tlp_level, threshold)
    agg = _aggregate(alerts, internal, pseudonymise, keep_internal)
    prov = _provenance(agg, audit, config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor)
    with console.status("building and validating the bundle…" if not no_validate else "building the bundle…"):
        written = write_stix(agg, prov, opts, out, check=not no_validate)
    console.print(f"wrote {out}: {written.objects:,} STIX objects for {agg.alerts:,} alerts in {len(agg.groups):,} groups, "
                  f"{opts.tlp.name}" + ("" if no_validate else ", valid for stix2-validator"))  # fmt: skip


@app.command("misp")
def share_misp(
    alerts: Path = typer.Argument(..., help="Alerts file written by `fedledger detect`."),
    out: Path = typer.Option(Path("misp-event.json"), "--out", "-o", help="Where to write the MISP event (MISP JSON)."),
    org_name: str = OrgOpt,
    tlp_level: str = TlpOpt,
    threshold: float = ThresholdOpt,
    internal: list[str] = InternalOpt,
    pseudonymise: Path = PseudoOpt,
    keep_internal: bool = KeepOpt,
    audit: bool = AuditOpt,
    misp_url: str = typer.Option(None, "--misp-url", help="Push the event to this MISP instance (https)."),
    misp_key_file: Path = typer.Option(None, "--misp-key-file", help=f"File holding the MISP automation key (else ${MISP_KEY_ENV})."),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify the MISP server's TLS certificate."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for MISP."),
    config: Path = ConfigOpt,
    rpc_url: str = RpcOpt,
    ledger: str = LedgerOpt,
    chain_id: int = ChainIdOpt,
    store: Path = StoreOpt,
    ipfs_api: str = ApiOpt,
    descriptor: str = DescriptorOpt,
) -> None:
    """A MISP event of the alerts (netflow objects, TLP and ATT&CK galaxy tags, provenance); pushed with --misp-url."""
    from fedledger.intel.misp import push
    from fedledger.intel.secrets import read_misp_key
    from fedledger.intel.share import write_misp

    opts = _options(org_name, tlp_level, threshold)
    key = read_misp_key(misp_key_file, MISP_KEY_ENV) if misp_url else None  # a bad key fails before anything is read
    agg = _aggregate(alerts, internal, pseudonymise, keep_internal)
    prov = _provenance(agg, audit, config, rpc_url, ledger, chain_id, store, ipfs_api, descriptor)
    written, event = write_misp(agg, prov, opts, out)
    console.print(f"wrote {out}: a MISP event with {written.objects:,} netflow objects for {agg.alerts:,} alerts, {opts.tlp.misp_tag}")
    if misp_url and key:
        with console.status(f"pushing to {misp_url}…"):
            event_id = push(event, misp_url, key, timeout=timeout, verify_tls=not insecure)
        console.print(f"pushed to {misp_url} as event {event_id or '(id not returned)'}")


@app.command("taxii")
def share_taxii(
    bundle: Path = typer.Argument(..., help="STIX 2.1 bundle written by `fedledger share stix`."),
    url: str = typer.Option(..., "--url", help="The TAXII 2.1 API root, e.g. https://taxii.example.org/api1/."),
    collection: str = typer.Option(..., "--collection", help="The collection's id."),
    user: str = typer.Option(..., "--user", help="TAXII user name (HTTP basic auth)."),
    password_file: Path = typer.Option(None, "--password-file", help=f"File holding the TAXII password (else ${TAXII_PASSWORD_ENV})."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the server to finish adding the objects."),
    insecure: bool = typer.Option(False, "--insecure", help="Do not verify the server's TLS certificate."),
    as_json: bool = typer.Option(False, "--json", help="Print the server's status summary as JSON on stdout."),
) -> None:
    """Publish a bundle to a TAXII 2.1 collection and wait for its status."""
    from fedledger.intel.errors import AlertsError
    from fedledger.intel.secrets import read_secret
    from fedledger.intel.taxii import publish

    password = read_secret(password_file, TAXII_PASSWORD_ENV, "TAXII password", flag="--password-file").decode("utf-8", "replace")
    try:
        if bundle.stat().st_size > 512 << 20:
            raise AlertsError(f"bundle {bundle} is larger than 512 MiB", hint="share fewer alerts at once")
        obj = json.loads(bundle.read_bytes())
    except OSError as exc:
        raise AlertsError(f"cannot read bundle {bundle}: {exc.strerror or exc}", hint="pass the file `fedledger share stix` wrote") from None
    except ValueError as exc:
        raise AlertsError(f"bundle {bundle} is not JSON: {exc}", hint="pass the file `fedledger share stix` wrote") from None
    if not isinstance(obj, dict) or obj.get("type") != "bundle":
        raise AlertsError(f"{bundle} is not a STIX bundle", hint="pass the file `fedledger share stix` wrote")
    with console.status(f"publishing {len(obj.get('objects') or []):,} objects to {url}…"):
        result = publish(obj, api_root=url, collection_id=collection, user=user, password=password, timeout=timeout,
                         verify_tls=not insecure)  # fmt: skip
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    console.print(f"published to {result.collection}: {result.succeeded:,} added, {result.failed:,} not added"
                  + (f" (first: {result.failures[0]}; a re-published object is refused as already there)" if result.failed else ""))  # fmt: skip

