"""A secure round's documents are RFC 8785 JSON that another language reproduces byte for byte.

The round runs on a real anvil chain with the real store; its manifest (with the
``secure_aggregation`` section: integers, hex keys, CIDs, statuses), its descriptor and every
share and reveal bundle it names are re-canonicalised by the npm package ``canonicalize`` in
JavaScript, and read back and written again by the project's own parsers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import errors
from contracts.anvil import LocalAnvil
from contracts.client import Ledger
from federation.canonical import MAX_SAFE_INTEGER, canonical_json, parse_bounded_json
from federation.descriptor import Descriptor
from federation.secagg import InvalidBundle, RevealBundle, ShareBundle
from ipfs import digest_to_cid
from tests.federation.test_canonical import _node_canonical
from tests.helpers.secure import make_secure_env, run_secure_round


@pytest.fixture
def chain():  # type: ignore[no-untyped-def]
    with LocalAnvil() as node:
        yield node


def test_a_secure_rounds_manifest_descriptor_and_bundles_round_trip_in_both_languages(tmp_path: Path, chain: LocalAnvil) -> None:
    env = make_secure_env(tmp_path, chain)
    outcome = run_secure_round(env)
    assert outcome is not None and outcome.finalized, outcome
    info = env.ledger.get_round(1)
    manifest_bytes = env.store.get(digest_to_cid(info.manifest))
    manifest = json.loads(manifest_bytes)
    section = manifest["secure_aggregation"]
    assert type(section["weight_sum"]) is int and section["weight_sum"] > 0 and type(section["scale_bits"]) is int
    members = section["members"]
    assert len(members) == 5 and all(len(bytes.fromhex(m["key"])) == 32 for m in members)
    shares = [env.store.get(m["shares"]) for m in members]
    reveals = [env.store.get(m["reveal"]) for m in members]
    descriptor = env.store.get(env.fed.descriptor_cid)

    documents = [manifest_bytes, descriptor, *shares, *reveals]
    assert _node_canonical(documents) == documents
    for doc in documents:
        assert canonical_json(parse_bounded_json(doc, max_bytes=1 << 24, max_depth=32)) == doc
    assert Descriptor.from_bytes(descriptor).to_bytes() == descriptor
    assert [ShareBundle.parse(b).to_bytes() for b in shares] == shares
    assert [RevealBundle.parse(b).to_bytes() for b in reveals] == reveals


def test_a_bundle_with_an_integer_no_double_holds_is_refused_by_name(tmp_path: Path, chain: LocalAnvil) -> None:
    env = make_secure_env(tmp_path, chain)
    run_secure_round(env)
    members = json.loads(env.store.get(digest_to_cid(env.ledger.get_round(1).manifest)))["secure_aggregation"]["members"]
    reveal = json.loads(env.store.get(members[0]["reveal"]))
    # 2^53 is a double JCS writes as these digits: read back, it is no integer a round can be.
    # 2^63 - 1 is no double at all: its digits are not what JCS writes for the nearest one.
    for big, problem in ((MAX_SAFE_INTEGER + 1, "round must be an integer in 1..9007199254740991"),
                         (2**63 - 1, "is not in canonical form")):  # fmt: skip
        text = canonical_json({**reveal, "round": 0}).replace(b'"round":0', b'"round":%d' % big)
        with pytest.raises(InvalidBundle, match=problem):
            RevealBundle.parse(text)
    assert RevealBundle.parse(canonical_json(reveal)).round_id == 1


def test_a_chain_whose_id_no_double_holds_is_refused_before_anything_is_written() -> None:
    with LocalAnvil(chain_id=2**53) as node:
        with pytest.raises(errors.AttachRefused, match="above 2\\^53-1") as caught:
            Ledger.deploy(node.rpc_url, node.accounts[0], b"\x01" * 32, min_updates=1, descriptor=b"\x02" * 32)
    assert "EIP-2294" in (caught.value.hint or "")
