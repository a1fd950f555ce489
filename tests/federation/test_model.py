"""Model spec, MLP and the canonical model file."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy
import torch

from faults import FedLedgerError
from federation.model import (
    InvalidModelFile,
    InvalidModelSpec,
    ModelSpec,
    load_model_bytes,
    model_digest,
    save_model_bytes,
)
from federation.model.network import (
    build_model,
    get_weights,
    init_model,
    model_from_weights,
)
from federation.tensorfile import dump_tensors

SPEC = ModelSpec("synthetic/v1", 12, (16, 8), ("normal", "dos", "probe"))


def test_spec_json_is_canonical_and_round_trips() -> None:
    text = SPEC.to_json()
    assert text == (
        '{"activation":"relu","classes":["normal","dos","probe"],"hidden":[16,8],'
        '"input_dim":12,"schema_id":"synthetic/v1","version":1}'
    )
    assert SPEC.digest() == hashlib.sha256(text.encode()).hexdigest()
    assert ModelSpec.from_json(text) == SPEC
    # Key order and whitespace in the input do not matter; the canonical form does.
    shuffled = json.dumps(dict(reversed(list(json.loads(text).items()))), indent=2)
    assert ModelSpec.from_json(shuffled).digest() == SPEC.digest()


def test_spec_digest_changes_with_any_field() -> None:
    others = [
        ModelSpec("synthetic/v2", 12, (16, 8), ("normal", "dos", "probe")),
        ModelSpec("synthetic/v1", 13, (16, 8), ("normal", "dos", "probe")),
        ModelSpec("synthetic/v1", 12, (16,), ("normal", "dos", "probe")),
        ModelSpec("synthetic/v1", 12, (16, 8), ("normal", "probe", "dos")),
        ModelSpec("synthetic/v1", 12, (16, 8), ("normal", "dos", "probe"), "tanh"),
    ]
    assert len({SPEC.digest(), *(o.digest() for o in others)}) == 6


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"schema_id": ""}, "schema_id"),
        ({"input_dim": 0}, "input_dim"),
        ({"input_dim": 3.0}, "input_dim"),
        ({"hidden": (16, -1)}, "hidden"),
        ({"classes": ("normal",)}, "classes"),
        ({"classes": ("normal", "dos", "dos")}, "repeat"),
        ({"activation": "gelu"}, "activation"),
        ({"hidden": (100_000, 100_000, 100_000)}, "parameters"),
    ],
)
def test_bad_specs_are_rejected(kwargs: dict, fragment: str) -> None:
    fields = {"schema_id": "s/v1", "input_dim": 4, "hidden": (8,), "classes": ("normal", "dos")} | kwargs
    with pytest.raises(InvalidModelSpec, match=fragment):
        ModelSpec(**fields)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"schema_id": "a"}', "keys"),
        (SPEC.to_json().replace('"version":1', '"version":2'), "version"),
        (SPEC.to_json().replace('"hidden":[16,8]', '"hidden":16'), "lists"),
    ],
)
def test_bad_spec_json_is_rejected(text: str, fragment: str) -> None:
    with pytest.raises(InvalidModelSpec, match=fragment):
        ModelSpec.from_json(text)


def test_model_shapes_follow_the_spec() -> None:
    model = build_model(SPEC)
    weights = get_weights(model)
    assert list(weights) == sorted(weights) == list(SPEC.tensor_shapes())
    assert {k: v.shape for k, v in weights.items()} == SPEC.tensor_shapes()
    assert sum(v.size for v in weights.values()) == SPEC.num_parameters()
    out = model(torch.zeros(5, 12))
    assert out.shape == (5, 3)


def test_init_is_seeded_and_does_not_disturb_the_global_rng() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = init_model(SPEC, 7)
    after = torch.rand(1)
    assert before == after
    b = init_model(SPEC, 7)
    c = init_model(SPEC, 8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_model_file_round_trips_and_is_plain_safetensors() -> None:
    weights = init_model(SPEC, 1)
    data = save_model_bytes(SPEC, weights)
    spec, loaded = load_model_bytes(data, SPEC)
    assert spec == SPEC
    assert all(np.array_equal(weights[k], loaded[k]) and loaded[k].dtype == np.float32 for k in weights)
    # Any safetensors reader gets the same tensors.
    other = safetensors.numpy.load(data)
    assert all(np.array_equal(weights[k], other[k]) for k in weights)
    # Torch tensors and numpy arrays give the same bytes; so does a second call.
    as_torch = {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    assert save_model_bytes(SPEC, as_torch) == data == save_model_bytes(SPEC, dict(reversed(list(weights.items()))))
    assert model_from_weights(SPEC, loaded)(torch.ones(1, 12)).shape == (1, 3)


_FRESH = """
import hashlib, sys
from federation.model import ModelSpec, save_model_bytes
from federation.model.network import init_model
spec = ModelSpec.from_json(sys.argv[1])
print(hashlib.sha256(save_model_bytes(spec, init_model(spec, 3))).hexdigest())
"""


def test_same_weights_give_the_same_bytes_in_a_fresh_process() -> None:
    here = model_digest(save_model_bytes(SPEC, init_model(SPEC, 3)))
    out = subprocess.run([sys.executable, "-c", _FRESH, SPEC.to_json()], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


def _valid() -> tuple[bytes, dict[str, np.ndarray]]:
    weights = init_model(SPEC, 1)
    return save_model_bytes(SPEC, weights), weights


def test_load_rejects_another_spec() -> None:
    data, _ = _valid()
    other = ModelSpec("synthetic/v1", 12, (16, 8), ("normal", "dos", "web"))
    with pytest.raises(InvalidModelFile) as err:
        load_model_bytes(data, other)
    assert err.value.reason == "spec-mismatch"


def test_load_rejects_wrong_shapes_and_values() -> None:
    _, weights = _valid()
    meta = {"format": "fedledger-model/1", "spec": SPEC.to_json()}
    bad_shape = dict(weights, **{"layers.00.bias": np.zeros(15, np.float32)})
    with pytest.raises(InvalidModelFile) as err:
        load_model_bytes(dump_tensors(bad_shape, meta))
    assert err.value.reason == "shape-mismatch"
    nan = dict(weights, **{"layers.00.bias": np.full(16, np.nan, np.float32)})
    with pytest.raises(InvalidModelFile) as err:
        load_model_bytes(dump_tensors(nan, meta))
    assert err.value.reason == "non-finite"
    missing = {k: v for k, v in weights.items() if k != "layers.02.weight"}
    with pytest.raises(InvalidModelFile, match="missing"):
        load_model_bytes(dump_tensors(missing, meta))
    f64 = {k: v.astype(np.float64) for k, v in weights.items()}
    with pytest.raises(InvalidModelFile) as err:
        load_model_bytes(dump_tensors(f64, meta))
    assert err.value.reason == "dtype"
    with pytest.raises(InvalidModelFile, match="NaN"):
        save_model_bytes(SPEC, nan)


def test_load_rejects_malformed_bytes() -> None:
    data, weights = _valid()
    hlen = struct.unpack_from("<Q", data)[0]
    cases = {
        "truncated": data[:5],
        "header-size": struct.pack("<Q", 1 << 40) + data[8:],
        "header-json": struct.pack("<Q", 4) + b"{{{{" + data[12:],
        "offsets": data[:-4],
        "trailing-bytes": data + b"\0" * 4,
        "too-large": data + b"\0" * (1 << 21),
    }
    for reason, blob in cases.items():
        with pytest.raises(InvalidModelFile) as err:
            load_model_bytes(blob, SPEC)
        assert err.value.reason == reason, (reason, err.value)
    # Valid safetensors (extra header padding is allowed by the format) but not the canonical bytes.
    padded = struct.pack("<Q", hlen + 8) + data[8 : 8 + hlen] + b" " * 8 + data[8 + hlen :]
    assert set(safetensors.numpy.load(padded)) == set(weights)
    with pytest.raises(InvalidModelFile) as err:
        load_model_bytes(padded, SPEC)
    assert err.value.reason == "not-canonical"
    header = json.loads(data[8 : 8 + hlen])
    header["__metadata__"]["format"] = "something-else"
    with pytest.raises(InvalidModelFile) as err:
        load_model_bytes(dump_tensors(weights, header["__metadata__"]), SPEC)
    assert err.value.reason == "format"


def test_errors_are_fedledger_errors_with_hints() -> None:
    assert issubclass(InvalidModelFile, FedLedgerError) and issubclass(InvalidModelSpec, FedLedgerError)
    with pytest.raises(InvalidModelFile) as err:
        load_model_bytes(b"", SPEC)
    assert err.value.hint
