"""`fedledger share`: STIX 2.1 bundles checked by stix2-validator, a real TAXII 2.1 server (medallion on
loopback), MISP events through PyMISP's own loader, redaction, and provenance from a real federation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pymisp import MISPEvent

from fedledger.cli import main
from fedledger.intel import demo_outputs
from fedledger.intel.aggregate import aggregate
from fedledger.intel.alerts import read_alerts
from fedledger.intel.attack_map import MAPPING, techniques
from fedledger.intel.errors import IntelError
from fedledger.intel.misp import build_event, event_json
from fedledger.intel.redact import Redactor
from fedledger.intel.share import load_aggregate
from fedledger.intel.share_options import ShareOptions
from fedledger.intel.stix import build_bundle, bundle_text
from fedledger.intel.taxii import read_objects
from fedledger.intel.tlp import LEVELS, TLP2_EXTENSION, tlp
from flows.synthetic import generate
from flows.taxonomy import FAMILIES
from ipfs import digest_to_cid
from tests.helpers.intel import assert_valid_bundle
from tests.helpers.runtime import make_env, run_round
from tests.helpers.taxii import free_port, running_medallion

ROOT = Path(__file__).resolve().parents[2]
TLP1_IDS = ("613f2e26-407d-48c7-9eca-b8e91df99dc9", "34098fce-860f-48ae-8e50-ebd3cc5e41da",
            "f88d31f6-486f-44da-b317-01333bde0b82", "5e57c739-391a-4eb3-b6be-7d15ca92d5ed")  # fmt: skip


@pytest.fixture(scope="module")
def fed(tmp_path_factory, anvil):  # noqa: ANN001, ANN201
    """A real federation with one finalised round, and the demo's outputs for its model."""
    tmp = tmp_path_factory.mktemp("share")
    env = make_env(tmp / "fed", anvil)
    assert run_round(env, [0, 1]).finalized
    out = tmp / "out"
    out.mkdir()
    result = demo_outputs(out, env.ledger, env.store, env.fed.descriptor_cid, generate(600, 77))
    return env, out, result


@pytest.fixture(scope="module")
def taxii(tmp_path_factory):  # noqa: ANN001, ANN201
    with running_medallion(tmp_path_factory.mktemp("taxii")) as server:
        yield server


def _err(capsys: pytest.CaptureFixture) -> str:
    """What the command printed on stderr, as one line (the console wraps long lines)."""
    return " ".join(capsys.readouterr().err.split())


def _objects(path: Path) -> list[dict]:
    return json.loads(path.read_text())["objects"]


def _of(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["type"] == kind]


def _opts(**kw) -> ShareOptions:  # noqa: ANN003
    return ShareOptions(kw.pop("org", "First Bank"), tlp(kw.pop("level", "amber")), kw.pop("threshold", 0.9))


# -- STIX ------------------------------------------------------------------------------------


def test_the_demo_writes_alerts_a_valid_bundle_and_a_misp_event_with_the_rounds_provenance(fed) -> None:  # noqa: ANN001
    env, out, result = fed
    assert result["files"] == {"alerts": "alerts.jsonl", "stix": "bundle.json", "misp": "misp-event.json"}
    assert result["round"] == 1 and result["alerts"] > 0 and result["flows"] == 600
    text = (out / "bundle.json").read_text()
    assert_valid_bundle(text)
    objs = _objects(out / "bundle.json")
    [note] = _of(objs, "note")
    model = digest_to_cid(env.ledger.get_round(1).global_model)
    for needle in (f"ledger: {env.ledger.address}", "round: 1", f"global model: {model}", f"chain id: {env.chain.chain_id}",
                   f"descriptor: {env.fed.descriptor_cid}", f"--ledger {env.ledger.address}", "round 1"):  # fmt: skip
        assert needle in note["content"], needle
    refs = {r["source_name"]: r["external_id"] for r in note["external_references"]}
    assert refs["fedledger-ledger"] == f"eip155:{env.chain.chain_id}:{env.ledger.address}" and refs["fedledger-round"] == "1"
    assert refs["fedledger-global-model"] == model and refs["fedledger-descriptor"] == env.fed.descriptor_cid
    assert set(note["object_refs"]) >= {o["id"] for o in _of(objs, "sighting")}
    # TLP 2.0 AMBER as OASIS publishes it, on every object; never a TLP 1.0 marking.
    [marking] = _of(objs, "marking-definition")
    assert marking == LEVELS["amber"].marking_definition()
    assert marking["extensions"][TLP2_EXTENSION]["tlp_2_0"] == "amber"
    assert all(o.get("object_marking_refs") == [marking["id"]] for o in objs if o["type"] != "marking-definition")
    assert not any(i in text for i in TLP1_IDS)
    # The demo's internal destinations (10.20.0.0/24) do not leave the organisation.
    assert "10.20.0." not in text and "10.20.0." in (out / "alerts.jsonl").read_text()


def test_aggregation_one_observation_per_source_and_family_with_counts(fed) -> None:  # noqa: ANN001
    _, out, result = fed
    objs = _objects(out / "bundle.json")
    threats = [a for a in read_alerts(out / "alerts.jsonl") if a.family != "normal"]
    sightings, observed = _of(objs, "sighting"), _of(objs, "observed-data")
    assert sum(s["count"] for s in sightings) == len(threats) == result["alerts"]
    assert len(sightings) == len({(a.src_ip, a.family) for a in threats}) == result["groups"] < len(threats)
    assert sum(o["number_observed"] for o in observed) == len(threats)
    by_id = {o["id"]: o for o in objs}
    for o in observed:
        assert o["first_observed"] <= o["last_observed"]
        assert any(by_id[r]["type"] == "ipv4-addr" for r in o["object_refs"])
        traffic = [by_id[r] for r in o["object_refs"] if by_id[r]["type"] == "network-traffic"]
        assert traffic and traffic[0]["protocols"] == ["tcp"]
    patterns = {p["id"]: p for p in _of(objs, "attack-pattern")}
    dos = next(p for p in patterns.values() if p["name"].endswith("(dos)"))
    assert {r["external_id"] for r in dos["external_references"] if r["source_name"] == "mitre-attack"} == {"T1498", "T1499"}
    assert all(s["sighting_of_ref"] in patterns for s in sightings)


def test_indicators_only_above_the_confidence_threshold(fed) -> None:  # noqa: ANN001
    env, out, _ = fed
    from fedledger.intel.provenance import resolve_model

    prov = resolve_model(env.ledger, env.store, env.fed.descriptor_cid).provenance
    agg = load_aggregate(out / "alerts.jsonl", Redactor())
    everyone = bundle_text(build_bundle(agg, prov, _opts(threshold=0.0)))
    assert_valid_bundle(everyone)
    indicators = _of(json.loads(everyone)["objects"], "indicator")
    assert len(indicators) == sum(1 for g in agg.groups if g.source is not None)
    assert all(re.fullmatch(r"\[ipv4-addr:value = '[0-9.]+'\]", i["pattern"]) for i in indicators)
    none = json.loads(bundle_text(build_bundle(agg, prov, _opts(threshold=1.0))))["objects"]
    assert len(_of(none, "indicator")) == sum(1 for g in agg.groups if g.source and g.confidence >= 1.0)
    assert len(_of(json.loads(everyone)["objects"], "relationship")) == len(indicators)
    with pytest.raises(IntelError, match="not in 0..1"):
        _opts(threshold=1.5)


def test_sharing_the_same_alerts_again_gives_the_same_bundle_and_the_cli_checks_the_chain(fed, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    env, out, _ = fed
    bundle = tmp_path / "bundle.json"
    rc = main(["share", "stix", str(out / "alerts.jsonl"), "--out", str(bundle), "--org-name", "First Bank", *env.common_args()])
    assert rc == 0
    assert bundle.read_bytes() == (out / "bundle.json").read_bytes()  # deterministic ids and timestamps
    assert_valid_bundle(bundle.read_text())
    assert "audited by the sharer: no" in _of(_objects(bundle), "note")[0]["content"]
    red = tmp_path / "red.json"
    assert main(["share", "stix", str(out / "alerts.jsonl"), "--out", str(red), "--org-name", "First Bank", "--tlp", "red",
                 "--require-audit", *env.common_args()]) == 0  # fmt: skip
    assert_valid_bundle(red.read_text())
    assert [m["name"] for m in _of(_objects(red), "marking-definition")] == ["TLP:RED"]
    assert "audited by the sharer: yes" in _of(_objects(red), "note")[0]["content"]
    # Alerts that claim a model the chain does not record for their round are not shared.
    lines = (out / "alerts.jsonl").read_text().splitlines()
    genesis = digest_to_cid(env.ledger.genesis_model())
    for bad, message in (({"model": genesis}, "is not the global model of round 1"), ({"round": 9}, "round 9 does not exist")):
        forged = tmp_path / "forged.jsonl"
        forged.write_text("\n".join(json.dumps({**json.loads(x), **bad}) for x in lines) + "\n")
        capsys.readouterr()
        assert main(["share", "stix", str(forged), "--out", str(tmp_path / "x.json"), "--org-name", "X", *env.common_args()]) == 1
        err = _err(capsys)
        assert message in err and "Traceback" not in err and not (tmp_path / "x.json").exists()


def test_tlp_levels_are_the_fixed_tlp2_marking_definitions() -> None:
    ids = {k: v.marking_id for k, v in LEVELS.items()}
    assert ids == {
        "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
    }
    assert tlp("TLP:AMBER+STRICT").name == "TLP:AMBER+STRICT" and tlp("Clear").misp_tag == "tlp:clear"
    with pytest.raises(IntelError, match="TLP:CLEAR"):
        tlp("white")
    with pytest.raises(IntelError, match="unknown TLP level"):
        tlp("purple")


def test_every_family_of_the_taxonomy_has_an_attack_mapping_and_the_docs_show_it() -> None:
    assert set(FAMILIES) <= set(MAPPING)
    assert [t.id for t in techniques("dos")] == ["T1498", "T1499"]
    assert {t.id for t in techniques("probe")} == {"T1046", "T1595"} and "T1110" in {t.id for t in techniques("r2l")}
    assert [t.id for t in techniques("u2r")] == ["T1068"] and techniques("generic") == () and techniques("backdoor") == ()
    assert techniques("fuzzers")[0].url == "https://attack.mitre.org/techniques/T1595/002/"
    doc = (ROOT / "docs" / "threat-intel.md").read_text()
    for family in MAPPING:
        assert re.search(rf"^\| `{re.escape(family)}` \|", doc, re.M), family


# -- what leaves the organisation ------------------------------------------------------------


def test_internal_addresses_are_dropped_pseudonymised_or_kept(fed, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    env, out, _ = fed
    alerts = str(out / "alerts.jsonl")
    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    pseudo = tmp_path / "pseudo.json"
    assert main(["share", "stix", alerts, "--out", str(pseudo), "--org-name", "First Bank", "--pseudonymise", str(key),
                 "--internal", "198.51.100.0/24", *env.common_args()]) == 0  # fmt: skip
    text = pseudo.read_text()
    assert_valid_bundle(text)
    assert "10.20.0." not in text and "198.51.100." not in text and re.search(r"h-[0-9a-f]{32}", text)
    assert "b" * 8 not in text and "k" * 8 not in text  # the key never appears
    again = tmp_path / "again.json"
    assert main(["share", "stix", alerts, "--out", str(again), "--org-name", "First Bank", "--pseudonymise", str(key),
                 "--internal", "198.51.100.0/24", *env.common_args()]) == 0  # fmt: skip
    assert again.read_bytes() == pseudo.read_bytes()
    kept = tmp_path / "kept.json"
    assert main(["share", "stix", alerts, "--out", str(kept), "--org-name", "First Bank", "--keep-internal", *env.common_args()]) == 0
    assert any(o["value"].startswith("10.20.0.") for o in _of(_objects(kept), "ipv4-addr"))
    key.write_bytes(b"short")
    capsys.readouterr()
    assert main(["share", "stix", alerts, "--out", str(tmp_path / "x.json"), "--org-name", "X", "--pseudonymise", str(key),
                 *env.common_args()]) == 1  # fmt: skip
    err = _err(capsys)
    assert "only 5 bytes" in err and "short" not in err
    r = Redactor(["100.64.0.0/10"], mode="pseudonymise", key=b"x" * 16)
    assert r.shared("203.0.113.9").value == "203.0.113.9" and r.shared("not-an-ip") is None
    assert r.shared("100.64.1.2").pseudonym and r.shared("100.64.1.2") == r.shared("100.64.1.2")
    assert Redactor().shared("192.168.1.1") is None and Redactor(mode="keep").shared("192.168.1.1").value == "192.168.1.1"
    with pytest.raises(IntelError, match="not a CIDR"):
        Redactor(["10.0.0.0/33"])


def test_groups_are_bounded_whatever_the_number_of_sources(fed) -> None:  # noqa: ANN001
    _, out, _ = fed
    alerts = list(read_alerts(out / "alerts.jsonl"))
    agg = aggregate(alerts, Redactor(), max_groups=2)
    threats = sum(1 for a in alerts if a.family != "normal")
    assert sum(g.count for g in agg.groups) == threats and agg.folded_sources > 0
    assert sum(1 for g in agg.groups if g.source is not None) == 2


# -- TAXII -----------------------------------------------------------------------------------


def test_publish_to_a_real_taxii_server_and_read_back(fed, taxii, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    _, out, _ = fed
    pw = tmp_path / "pw"
    pw.write_text(taxii.password + "\n")
    args = ["share", "taxii", str(out / "bundle.json"), "--url", taxii.api_root, "--collection", taxii.collection,
            "--user", taxii.user]  # fmt: skip
    capsys.readouterr()
    assert main([*args, "--password-file", str(pw), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    sent = {o["id"] for o in _objects(out / "bundle.json")}
    assert status["succeeded"] == len(sent) and status["failed"] == 0 and status["statuses"]
    back = read_objects(api_root=taxii.api_root, collection_id=taxii.collection, user=taxii.user, password=taxii.password)
    assert {o["id"] for o in back} == sent
    assert [o for o in back if o["type"] == "note"][0] == next(o for o in _objects(out / "bundle.json") if o["type"] == "note")
    monkeypatch.setenv("FEDLEDGER_TAXII_PASSWORD", taxii.password)  # the password from the environment; again: nothing new
    assert main(args) == 0
    assert "0 added" in _err(capsys)


def test_taxii_refusals_are_one_line_each(fed, taxii, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    _, out, _ = fed
    bundle = str(out / "bundle.json")
    monkeypatch.setenv("FEDLEDGER_TAXII_PASSWORD", taxii.password)
    base = ["share", "taxii", bundle, "--user", taxii.user, "--timeout", "10"]
    down = f"http://127.0.0.1:{free_port()}/api1/"
    cases = [
        (["--url", taxii.api_root, "--collection", taxii.collection], {"FEDLEDGER_TAXII_PASSWORD": "wrong"}, "refused the login (401)"),
        (["--url", taxii.api_root, "--collection", "no-such-collection"], {}, "has no collection no-such-collection"),
        (["--url", taxii.api_root.replace("api1", "api9"), "--collection", taxii.collection], {}, "no TAXII 2.1 API root"),
        (["--url", taxii.api_root, "--collection", taxii.read_only], {}, "does not let this user write"),
        (["--url", down, "--collection", taxii.collection], {}, "cannot reach the TAXII server"),
        (["--url", "http://192.0.2.1/api1/", "--collection", taxii.collection], {}, "credentials would travel in clear"),
    ]
    for extra, env, message in cases:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        assert main([*base, *extra]) == 1
        err = _err(capsys)
        assert message in err and "hint:" in err and "Traceback" not in err, err
        assert "wrong" not in err and taxii.password not in err
        monkeypatch.setenv("FEDLEDGER_TAXII_PASSWORD", taxii.password)
    monkeypatch.delenv("FEDLEDGER_TAXII_PASSWORD")
    assert main([*base, "--url", taxii.api_root, "--collection", taxii.collection]) == 1
    assert "never taken from the command line" in _err(capsys)
    assert main([*base, "--url", taxii.api_root, "--collection", taxii.collection, "--password", "x"]) == 2  # no such option


# -- MISP ------------------------------------------------------------------------------------


def test_the_misp_event_round_trips_through_pymisp(fed) -> None:  # noqa: ANN001
    env, out, result = fed
    text = (out / "misp-event.json").read_text()
    event = MISPEvent()
    event.load(text)
    tags = {t.name for t in event.tags}
    assert "tlp:amber" in tags
    families = set(result["by_family"])
    for f in families:
        assert {t.misp_galaxy_tag for t in techniques(f)} <= tags
    assert 'misp-galaxy:mitre-attack-pattern="Network Denial of Service - T1498"' in tags
    assert len(event.objects) == result["groups"] and {o.name for o in event.objects} == {"netflow"}
    counts = sum(int(a.value) for o in event.objects for a in o.attributes if a.object_relation == "flow-count")
    assert counts == result["alerts"]
    provenance = {a.comment.removeprefix("fedledger provenance: "): a.value for a in event.attributes}
    assert provenance["ledger"] == env.ledger.address and provenance["round"] == "1"
    assert provenance["global model"] == result["model"] and provenance["chain id"] == str(env.chain.chain_id)
    src = [a for o in event.objects for a in o.attributes if a.object_relation == "ip-src"]
    assert src and all(not a.value.startswith("10.20.") for a in src)
    assert all(any(t.name.startswith("misp-galaxy:mitre-attack-pattern=") for t in a.tags) for a in src)
    assert "10.20.0." not in text


def test_misp_cli_writes_the_same_event_and_refuses_bad_keys_and_servers(fed, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    env, out, _ = fed
    alerts = str(out / "alerts.jsonl")
    event = tmp_path / "event.json"
    assert main(["share", "misp", alerts, "--out", str(event), "--org-name", "First Bank", *env.common_args()]) == 0
    assert event.read_bytes() == (out / "misp-event.json").read_bytes()
    key = tmp_path / "misp.key"
    down = f"http://127.0.0.1:{free_port()}"
    cases = [
        (None, down, "neither --misp-key-file nor the environment variable FEDLEDGER_MISP_KEY"),
        ("not-a-key", down, "does not hold a MISP automation key"),
        ("A" * 40, down, "cannot reach MISP"),
        ("A" * 40, "http://192.0.2.1", "credentials would travel in clear"),
    ]
    for content, url, message in cases:
        extra = []
        if content is not None:
            key.write_text(content + "\n")
            extra = ["--misp-key-file", str(key)]
        capsys.readouterr()
        rc = main(["share", "misp", alerts, "--out", str(tmp_path / "pushed.json"), "--org-name", "First Bank",
                   "--misp-url", url, "--timeout", "5", *extra, *env.common_args()])  # fmt: skip
        err = _err(capsys)
        assert rc == 1 and message in err and "Traceback" not in err and "AAAAAAAA" not in err, err
    missing = tmp_path / "nope.key"
    capsys.readouterr()
    assert main(["share", "misp", alerts, "--out", str(event), "--org-name", "X", "--misp-url", down,
                 "--misp-key-file", str(missing), *env.common_args()]) == 1  # fmt: skip
    assert "cannot read the MISP key file" in _err(capsys)


def test_misp_and_stix_builds_are_deterministic(fed) -> None:  # noqa: ANN001
    env, out, _ = fed
    from fedledger.intel.provenance import resolve_model

    prov = resolve_model(env.ledger, env.store, env.fed.descriptor_cid).provenance
    agg = load_aggregate(out / "alerts.jsonl", Redactor())
    assert event_json(build_event(agg, prov, _opts())) == event_json(build_event(agg, prov, _opts()))
    assert bundle_text(build_bundle(agg, prov, _opts())) == bundle_text(build_bundle(agg, prov, _opts()))
    other = bundle_text(build_bundle(agg, prov, _opts(org="City Hospital")))
    assert_valid_bundle(other)
    assert "City Hospital" in other
