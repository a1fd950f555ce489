"""Federation parameters: one TOML file, every value overridable from the command line.

A file looks like::

    [chain]
    rpc_url = "http://127.0.0.1:8545"
    ledger = "0x…"            # the FederationLedger address (after `fedledger deploy`)
    chain_id = 31337

    [store]
    dir = "./store"           # embedded store; or
    # ipfs_api = "/ip4/127.0.0.1/tcp/5001"
    peers = ["http://10.0.0.7:5101"]   # other members' `fedledger ipfs serve` (embedded store only)

    [federation]
    descriptor = "Qm…"        # the federation descriptor's CID (written by `fedledger deploy`)
    round_seconds = 120
    rounds = 5

    [training]
    epochs = 1
    batch_size = 256
    lr = 0.005
    mu = 0.0                  # FedProx
    absent_class_scale = 0.0  # FedRS (1 = off, 0 = fully restricted)
    class_weights = "sqrt"    # balanced, sqrt or none
    logit_calibration = 0.5   # FedLC's tau (0 = off)

Unknown sections or keys are an error (a typo must not silently fall back to a default),
and so is a value of the wrong type (``rounds = "five"``): each is checked against its field.
"""

from __future__ import annotations

import tomllib
import types
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import tomli_w

from faults import FedLedgerError
from federation import recipe


class ConfigError(FedLedgerError):
    """A configuration file or value that cannot be used."""


@dataclass(frozen=True)
class ChainConfig:
    rpc_url: str = "http://127.0.0.1:8545"
    ledger: str | None = None
    chain_id: int | None = None


@dataclass(frozen=True)
class StoreConfig:
    dir: str | None = None
    ipfs_api: str | None = None
    # Other members' stores to read what this one lacks (``fedledger ipfs serve`` or Kubo RPC addresses).
    peers: list[str] | None = None


@dataclass(frozen=True)
class FederationConfig:
    descriptor: str | None = None
    round_seconds: int = 120
    rounds: int = 5
    poll_seconds: float = 0.5
    fetch_timeout: float | None = None  # the reveal window; None: the descriptor's
    fetch_workers: int = 4


@dataclass(frozen=True)
class TrainingConfig:
    """How a member trains: the defaults are the recipe of federation.recipe."""

    epochs: int = recipe.EPOCHS
    batch_size: int = recipe.BATCH_SIZE
    lr: float = recipe.LR
    mu: float = 0.0
    # FedRS restricted softmax for classes a member has never seen (1 = off, 0 = fully restricted).
    absent_class_scale: float = recipe.ABSENT_CLASS_SCALE
    class_weights: str = recipe.CLASS_WEIGHTS  # balanced, sqrt or none
    logit_calibration: float = recipe.LOGIT_CALIBRATION  # FedLC's tau (0 = off)


@dataclass(frozen=True)
class Config:
    chain: ChainConfig = field(default_factory=ChainConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    federation: FederationConfig = field(default_factory=FederationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def with_overrides(self, **sections: dict[str, Any]) -> Config:
        """Return a copy with the non-None values of ``sections`` applied (CLI options win)."""
        out = self
        for name, values in sections.items():
            current = getattr(out, name)
            clean = {k: v for k, v in values.items() if v is not None}
            _check_keys(name, clean, type(current))
            clean = {k: _checked(name, k, v, type(current)) for k, v in clean.items()}
            out = replace(out, **{name: replace(current, **clean)})
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_keys(section: str, values: dict[str, Any], cls: type) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in [{section}]: {', '.join(unknown)}",
            hint=f"known keys in [{section}]: {', '.join(sorted(known))}",
        )


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", dict: "a table", list: "an array"}


def _checked(section: str, key: str, value: Any, cls: type) -> Any:
    """``value`` if it has the type of field ``key`` (an integer is taken for a float), else a ConfigError."""
    hint = get_type_hints(cls)[key]
    allowed = [t for t in (hint.__args__ if isinstance(hint, types.UnionType) else (hint,)) if t is not type(None)]
    for t in allowed:
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if get_origin(t) is list:
            (item,) = get_args(t)
            if isinstance(value, list) and all(isinstance(v, item) for v in value):
                return list(value)
            continue
        if isinstance(value, t) and not (t is int and isinstance(value, bool)):
            return value
    expected = " or ".join(_type_name(t) for t in allowed)
    got = _TYPE_NAMES.get(type(value), type(value).__name__)
    raise ConfigError(
        f"[{section}] {key} must be {expected}, got {value!r} ({got})",
        hint=f"e.g. {key} = {_example(cls, key, allowed[0])} in [{section}]",
    )


def _type_name(t: Any) -> str:
    if get_origin(t) is list:
        return f"an array of {_TYPE_NAMES.get(get_args(t)[0], get_args(t)[0].__name__).split(' ', 1)[1]}s"
    return _TYPE_NAMES.get(t, t.__name__)


def _example(cls: type, key: str, t: type) -> str:
    default = next(f.default for f in fields(cls) if f.name == key)
    if default is not None and isinstance(default, t):
        return tomli_w.dumps({key: default}).split("=", 1)[1].strip()
    if get_origin(t) is list:
        return '["…"]'
    return {str: '"…"', int: "1", float: "0.5", bool: "true"}.get(t, "…")


def load_config(path: str | Path | None) -> Config:
    """Read a federation TOML file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}", hint="pass --config with an existing TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from None
    sections = {f.name: f.type for f in fields(Config)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(
            f"{p}: unknown section(s): {', '.join('[' + u + ']' for u in unknown)}",
            hint=f"known sections: {', '.join('[' + s + ']' for s in sections)}",
        )
    cfg = Config()
    for name, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{p}: [{name}] must be a table")
        try:
            cfg = cfg.with_overrides(**{name: values})
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}", hint=exc.hint) from None
    return cfg


def dump_config(cfg: Config) -> str:
    """Render a config as TOML (None values are left out); any string, ``\\`` and ``"`` included, round-trips."""
    return tomli_w.dumps({section: {k: v for k, v in values.items() if v is not None} for section, values in cfg.to_dict().items()})
