"""Canonical JSON is RFC 8785's, and another language reproduces it.

The second implementation is the npm package ``canonicalize`` (JavaScript, by one of the RFC's
authors), run by node: it re-canonicalises real descriptors and manifests byte for byte, and
canonicalises random values exactly as ``federation.canonical`` does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.canonical import MAX_SAFE_INTEGER, canonical_json, parse_bounded_json
from federation.descriptor import Descriptor, InvalidDescriptor
from federation.model import ModelSpec
from fedledger.local_federation import LocalFederation
from fedledger.simulate import SimulationConfig, run_simulation
from flows import local_stats, schema_for
from flows.schema import Normaliser

ROOT = Path(__file__).resolve().parents[2]
CANONICALIZE = ROOT / "node_modules" / "canonicalize" / "lib" / "canonicalize.js"

# Reads JSON texts, one a line, and writes each value in canonical form, one a line.
NODE_SCRIPT = f"""
import canonicalize from {json.dumps(CANONICALIZE.as_uri())};
import {{ createInterface }} from "node:readline";
const out = [];
for await (const line of createInterface({{ input: process.stdin }})) out.push(canonicalize(JSON.parse(line)));
process.stdout.write(out.join("\\n") + "\\n");
"""


def _node_canonical(texts: list[bytes]) -> list[bytes]:
    node = shutil.which("node")
    if node is None or not CANONICALIZE.is_file():
        pytest.skip("node or the npm package canonicalize is missing (./scripts/setup installs it)")
    run = subprocess.run(
        [node, "--input-type=module", "-e", NODE_SCRIPT], input=b"\n".join(texts) + b"\n", capture_output=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout.rstrip(b"\n").split(b"\n")


# --------------------------------------------------------------------------- the RFC's own examples


def test_rfc_8785_examples() -> None:
    # RFC 8785, section 3.2.2: the sample input and its canonical form.
    sample = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode("utf-8")
    assert canonical_json(json.loads(sample)) == expected
    # Section 3.2.3: members sorted by UTF-16 code units, not by code points.
    sorting = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
               "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}  # fmt: skip
    keys = list(json.loads(canonical_json(sorting)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_numbers_are_ecmascripts() -> None:
    assert canonical_json([1.0, -0.0, 1e21, 1e-7, 123456789.0, 0.1, 5e-324, 1.7976931348623157e308]) == (
        b"[1,0,1e+21,1e-7,123456789,0.1,5e-324,1.7976931348623157e+308]"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, -(2**53), {"seed": 2**63 - 1}])
def test_what_jcs_cannot_hold_exactly_is_refused(value) -> None:
    with pytest.raises(ValueError, match="no canonical JSON"):
        canonical_json(value)


def test_an_integral_double_beyond_2_53_reads_back_to_the_same_bytes() -> None:
    data = canonical_json({"scale": 1e16, "big": 2.5e20})
    assert data == b'{"big":250000000000000000000,"scale":10000000000000000}'
    assert canonical_json(parse_bounded_json(data, max_bytes=1000, max_depth=4)) == data
    assert parse_bounded_json(b"[9007199254740991]", max_bytes=100, max_depth=2) == [MAX_SAFE_INTEGER]


# --------------------------------------------------------------------------- real documents, in JavaScript


@pytest.fixture(scope="module")
def documents() -> list[bytes]:
    """Descriptors and round manifests as the federation writes them."""
    manifests: list[bytes] = []
    descriptors: list[bytes] = []
    original = LocalFederation.run_round

    def recording(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        result = original(self, *args, **kwargs)
        manifests.append(result.manifest_bytes)
        descriptors.append(self.descriptor.to_bytes())
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LocalFederation, "run_round", recording)
        config = dict(dataset="synthetic", synthetic_records=1500, participants=3, rounds=2, hidden=(16,), seed=3)
        run_simulation(SimulationConfig(**config, scoring="gtg-shapley"))  # type: ignore[arg-type]
        run_simulation(SimulationConfig(**config, attacks=("copy:1",), strategy="median"))  # type: ignore[arg-type]
    # A descriptor with a raw-file normaliser (many floats) and a name outside ASCII.
    stats, _ = local_stats("nsl-kdd", ROOT / "tests" / "data" / "nsl_kdd_train.txt")
    normaliser = Normaliser.from_stats(schema_for("nsl-kdd"), stats)
    schema = schema_for("nsl-kdd")
    spec = ModelSpec(schema.schema_id, schema.dim, (8,), ("normal", "dos", "probe", "r2l", "u2r"))
    named = Descriptor(name="Fédération Ωmega 🛡", spec=spec, validation="QmValidation", normaliser=normaliser.to_dict())
    return sorted(set(descriptors)) + [named.to_bytes()] + manifests


def test_javascript_reproduces_every_descriptor_and_manifest(documents) -> None:
    assert len(documents) >= 6
    assert _node_canonical(documents) == documents
    descriptors = [d for d in documents if b'"format":"fedledger-federation/' in d]
    assert len(descriptors) >= 2
    for doc in descriptors:
        assert Descriptor.from_bytes(doc).to_bytes() == doc


def test_descriptors_and_manifests_read_back_only_in_canonical_form(documents) -> None:
    descriptor = next(d for d in documents if "Ωmega".encode() in d)
    assert Descriptor.from_bytes(descriptor).to_bytes() == descriptor
    ascii_escaped = json.dumps(json.loads(descriptor), ensure_ascii=True, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(InvalidDescriptor, match="not in canonical form"):
        Descriptor.from_bytes(ascii_escaped)  # the encoding used before RFC 8785: no longer canonical


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), max_size=6), inner, max_size=5),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(json_values, min_size=1, max_size=40))
def test_random_values_canonicalise_alike_in_both_languages(values) -> None:
    ours = [canonical_json(v) for v in values]
    theirs = _node_canonical([json.dumps(v).encode() for v in values])
    assert theirs == ours
