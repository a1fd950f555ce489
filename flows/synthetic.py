"""A seeded synthetic flow generator for the embedded demo and for tests.

Why hand-written: no library generates labelled *network flows* with attack
families, and the federated story needs specific properties that we control
here:

* every family's signature is a combination of several correlated features —
  for each single feature some kind of *normal* traffic overlaps the attack
  (a flash crowd has a SYN flood's connection count, a misconfigured client its
  error rates, a monitoring host a sweep's fan-out), so a model has to learn;
* realistic imbalance (about 80 % normal, the rarest family ~1.5 %);
* noise: heavy-tailed (Student-t) feature jitter, categorical noise and a little
  label noise;
* categorical protocol/service/flag columns, some service names outside the
  schema's vocabulary, so the ``<other>`` bucket path is exercised.

The traffic *model* (profiles, correlations) is constant; only sampling depends
on the seed, so data generated with different seeds (train and test, or one set
per party) come from the same distribution. Normalisation is fixed by the
``synthetic/v1`` schema, so each party can generate and encode on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from flows.dataset import FlowDataset
from flows.errors import DataError
from flows.schema import (
    CategoricalFeature,
    FeatureSchema,
    Normaliser,
    NumericFeature,
    RawFlows,
)
from flows.taxonomy import NORMAL, class_list

SCHEMA_ID = "synthetic/v1"
FAMILIES: tuple[str, ...] = ("dos", "probe", "bruteforce", "web", "botnet")

#: Default share of each class in generated traffic (normal dominates, as in real networks).
DEFAULT_WEIGHTS: dict[str, float] = {
    NORMAL: 0.80, "dos": 0.08, "probe": 0.05, "bruteforce": 0.03, "web": 0.025, "botnet": 0.015,
}

# (name, latent kind): "log" features are drawn in log1p space, "rate" in logit
# space, "lin" directly.
_NUMERIC: tuple[tuple[str, str], ...] = (
    ("duration", "log"),
    ("src_bytes", "log"),
    ("dst_bytes", "log"),
    ("packets", "log"),
    ("count", "log"),
    ("srv_count", "log"),
    ("serror_rate", "rate"),
    ("rerror_rate", "rate"),
    ("same_srv_rate", "rate"),
    ("diff_srv_rate", "rate"),
    ("dst_host_count", "log"),
    ("failed_logins", "log"),
    ("payload_entropy", "lin"),
)
_NAMES = [n for n, _ in _NUMERIC]
_INTEGER = {"src_bytes", "dst_bytes", "packets", "count", "srv_count", "dst_host_count",
            "failed_logins"}

PROTOCOLS = ("tcp", "udp", "icmp")
SERVICES = ("http", "https", "dns", "ntp", "ssh", "telnet", "ftp", "smtp", "irc", "private")
FLAGS = ("SF", "S0", "REJ", "RSTO", "RSTR")
# Service names a scanner touches that the schema has no slot for (→ <other>).
_RARE_SERVICES = ("finger", "gopher", "x11", "ldap", "pop_3")


@dataclass(frozen=True)
class _Profile:
    """One kind of traffic: latent mean and spread per numeric feature, categorical mix."""

    weight: float
    mu: tuple[float, ...]
    sd: tuple[float, ...]
    protocol: Mapping[str, float]
    service: Mapping[str, float]
    flag: Mapping[str, float]


def _p(weight: float, spec: Mapping[str, tuple[float, float]], protocol: Mapping[str, float],
       service: Mapping[str, float], flag: Mapping[str, float]) -> _Profile:
    # Features a profile does not mention: no failed logins and ordinary rates.
    base = {"failed_logins": (-3.0, 0.5)}
    full = {**base, **spec}
    return _Profile(weight, tuple(full[n][0] for n in _NAMES), tuple(full[n][1] for n in _NAMES),
                    protocol, service, flag)


_WEB = {"http": 0.55, "https": 0.45}
_ANY_SERVICE = {**{s: 1.0 for s in SERVICES}, **{s: 0.6 for s in _RARE_SERVICES}}

# The traffic model. Latent units: log1p for "log" features, logit for rates.
PROFILES: dict[str, tuple[_Profile, ...]] = {
    NORMAL: (
        _p(0.35, dict(duration=(0.8, 0.8), src_bytes=(6.0, 0.9), dst_bytes=(8.5, 1.5),
                      packets=(2.8, 0.8), count=(1.5, 1.0), srv_count=(1.8, 1.0),
                      serror_rate=(-4.5, 1.2), rerror_rate=(-4.5, 1.2), same_srv_rate=(2.5, 1.2),
                      diff_srv_rate=(-3.0, 1.2), dst_host_count=(1.0, 0.8),
                      payload_entropy=(5.0, 1.3)),
           {"tcp": 1.0}, _WEB, {"SF": 0.93, "RSTO": 0.04, "S0": 0.03}),  # browsing
        _p(0.15, dict(duration=(0.02, 0.05), src_bytes=(4.0, 0.5), dst_bytes=(4.8, 0.6),
                      packets=(0.9, 0.3), count=(2.2, 1.1), srv_count=(2.2, 1.1),
                      serror_rate=(-5.0, 1.0), rerror_rate=(-4.0, 1.2), same_srv_rate=(2.0, 1.2),
                      diff_srv_rate=(-2.5, 1.2), dst_host_count=(0.8, 0.6),
                      payload_entropy=(4.2, 0.8)),
           {"udp": 1.0}, {"dns": 0.9, "ntp": 0.1}, {"SF": 1.0}),  # name resolution
        _p(0.10, dict(duration=(3.5, 1.0), src_bytes=(9.0, 2.0), dst_bytes=(9.0, 2.0),
                      packets=(5.5, 1.2), count=(0.8, 0.6), srv_count=(0.8, 0.6),
                      serror_rate=(-5.0, 1.0), rerror_rate=(-5.0, 1.0), same_srv_rate=(2.0, 1.0),
                      diff_srv_rate=(-3.0, 1.0), dst_host_count=(0.5, 0.5),
                      payload_entropy=(6.5, 1.0)),
           {"tcp": 1.0}, {"ftp": 0.3, "https": 0.4, "ssh": 0.2, "smtp": 0.1},
           {"SF": 1.0}),  # bulk transfer, backups
        _p(0.08, dict(duration=(3.0, 1.2), src_bytes=(7.0, 1.2), dst_bytes=(8.0, 1.2),
                      packets=(4.0, 1.0), count=(0.7, 0.6), srv_count=(0.7, 0.6),
                      serror_rate=(-5.0, 1.0), rerror_rate=(-4.5, 1.0), same_srv_rate=(2.0, 1.0),
                      diff_srv_rate=(-3.0, 1.0), dst_host_count=(0.6, 0.5),
                      failed_logins=(-1.2, 1.0), payload_entropy=(7.4, 0.4)),
           {"tcp": 1.0}, {"ssh": 0.75, "telnet": 0.05, "ftp": 0.2},
           {"SF": 0.95, "RSTO": 0.05}),  # admin sessions, the odd mistyped password
        _p(0.08, dict(duration=(0.5, 0.6), src_bytes=(5.8, 0.8), dst_bytes=(8.0, 1.4),
                      packets=(2.5, 0.7), count=(4.6, 0.6), srv_count=(4.4, 0.6),
                      serror_rate=(-1.8, 1.0), rerror_rate=(-3.5, 1.0), same_srv_rate=(2.5, 1.0),
                      diff_srv_rate=(-3.0, 1.0), dst_host_count=(1.2, 0.7),
                      payload_entropy=(5.0, 1.3)),
           {"tcp": 1.0}, {"http": 0.7, "https": 0.3},
           {"SF": 0.8, "S0": 0.15, "RSTO": 0.05}),  # flash crowd on a busy server
        _p(0.07, dict(duration=(0.0, 0.1), src_bytes=(0.5, 1.0), dst_bytes=(0.3, 0.8),
                      packets=(0.9, 0.4), count=(1.0, 0.8), srv_count=(0.8, 0.8),
                      serror_rate=(0.0, 1.5), rerror_rate=(0.8, 1.5), same_srv_rate=(1.5, 1.2),
                      diff_srv_rate=(-2.0, 1.2), dst_host_count=(0.6, 0.6),
                      payload_entropy=(1.0, 1.0)),
           {"tcp": 0.8, "udp": 0.2}, {"http": 0.3, "smtp": 0.2, "ssh": 0.1, "private": 0.4},
           {"REJ": 0.5, "S0": 0.35, "RSTR": 0.15}),  # failing, misconfigured clients
        _p(0.07, dict(duration=(0.05, 0.1), src_bytes=(3.5, 0.8), dst_bytes=(4.0, 1.0),
                      packets=(1.2, 0.4), count=(2.5, 0.8), srv_count=(1.5, 0.8),
                      serror_rate=(-4.0, 1.0), rerror_rate=(-3.0, 1.2), same_srv_rate=(0.0, 1.2),
                      diff_srv_rate=(-0.5, 1.2), dst_host_count=(3.0, 0.7),
                      payload_entropy=(3.0, 1.0)),
           {"tcp": 0.5, "udp": 0.2, "icmp": 0.3},
           {"http": 0.3, "private": 0.3, "ntp": 0.2, "ssh": 0.2},
           {"SF": 0.95, "REJ": 0.05}),  # monitoring hosts polling many machines
        _p(0.10, dict(duration=(0.3, 0.5), src_bytes=(5.5, 1.0), dst_bytes=(0.0, 0.5),
                      packets=(1.5, 0.6), count=(2.8, 1.0), srv_count=(2.6, 1.0),
                      serror_rate=(-4.5, 1.0), rerror_rate=(-3.5, 1.2), same_srv_rate=(2.5, 1.0),
                      diff_srv_rate=(-3.0, 1.0), dst_host_count=(0.5, 0.5),
                      payload_entropy=(4.5, 1.0)),
           {"udp": 0.8, "tcp": 0.2}, {"private": 0.6, "ntp": 0.2, "smtp": 0.2},
           {"SF": 1.0}),  # one-way streams: syslog, flow export, telemetry
    ),
    "dos": (
        _p(0.6, dict(duration=(0.0, 0.05), src_bytes=(0.3, 0.8), dst_bytes=(0.1, 0.4),
                     packets=(0.8, 0.3), count=(5.0, 0.5), srv_count=(4.6, 0.6),
                     serror_rate=(1.5, 1.2), rerror_rate=(-2.0, 1.5), same_srv_rate=(2.0, 1.2),
                     diff_srv_rate=(-3.0, 1.0), dst_host_count=(0.6, 0.6),
                     payload_entropy=(1.0, 1.0)),
           {"tcp": 1.0}, {"http": 0.6, "https": 0.2, "private": 0.2},
           {"S0": 0.75, "SF": 0.1, "REJ": 0.1, "RSTO": 0.05}),  # SYN flood
        _p(0.4, dict(duration=(0.01, 0.02), src_bytes=(7.0, 0.6), dst_bytes=(0.5, 0.8),
                     packets=(1.0, 0.4), count=(5.2, 0.5), srv_count=(5.0, 0.5),
                     serror_rate=(-5.0, 1.0), rerror_rate=(-3.0, 1.5), same_srv_rate=(3.0, 1.0),
                     diff_srv_rate=(-3.5, 1.0), dst_host_count=(0.5, 0.5),
                     payload_entropy=(2.0, 1.0)),
           {"udp": 1.0}, {"dns": 0.5, "ntp": 0.5}, {"SF": 1.0}),  # UDP amplification
    ),
    "probe": (
        _p(0.7, dict(duration=(0.0, 0.05), src_bytes=(0.2, 0.5), dst_bytes=(0.2, 0.5),
                     packets=(0.8, 0.3), count=(3.2, 0.8), srv_count=(0.7, 0.7),
                     serror_rate=(-0.5, 1.5), rerror_rate=(0.8, 1.5), same_srv_rate=(-1.5, 1.2),
                     diff_srv_rate=(1.2, 1.2), dst_host_count=(1.0, 0.8),
                     payload_entropy=(0.5, 0.8)),
           {"tcp": 0.85, "udp": 0.15}, _ANY_SERVICE,
           {"REJ": 0.45, "S0": 0.3, "RSTO": 0.15, "SF": 0.1}),  # port scan
        _p(0.3, dict(duration=(0.0, 0.05), src_bytes=(2.5, 0.7), dst_bytes=(1.0, 1.5),
                     packets=(0.7, 0.3), count=(1.5, 0.8), srv_count=(1.5, 0.8),
                     serror_rate=(-3.0, 1.5), rerror_rate=(-1.0, 1.5), same_srv_rate=(1.0, 1.2),
                     diff_srv_rate=(-1.0, 1.2), dst_host_count=(4.2, 0.6),
                     payload_entropy=(1.5, 1.0)),
           {"icmp": 0.7, "tcp": 0.3}, {"private": 0.5, "http": 0.2, "ssh": 0.15, "smtp": 0.15},
           {"SF": 0.6, "REJ": 0.4}),  # host sweep
    ),
    "bruteforce": (
        _p(1.0, dict(duration=(1.2, 0.6), src_bytes=(5.5, 0.5), dst_bytes=(6.3, 0.6),
                     packets=(2.6, 0.4), count=(3.2, 0.8), srv_count=(3.6, 0.7),
                     serror_rate=(-3.5, 1.2), rerror_rate=(-3.0, 1.2), same_srv_rate=(3.0, 1.0),
                     diff_srv_rate=(-3.5, 1.0), dst_host_count=(0.4, 0.4),
                     failed_logins=(0.5, 0.8), payload_entropy=(7.0, 0.5)),
           {"tcp": 1.0}, {"ssh": 0.6, "ftp": 0.3, "telnet": 0.1},
           {"SF": 0.85, "RSTO": 0.15}),  # password guessing
    ),
    "web": (
        _p(1.0, dict(duration=(0.7, 0.5), src_bytes=(7.8, 0.5), dst_bytes=(5.5, 0.8),
                     packets=(2.6, 0.5), count=(2.8, 0.5), srv_count=(3.0, 0.5),
                     serror_rate=(-4.0, 1.2), rerror_rate=(-2.0, 1.0), same_srv_rate=(2.5, 1.0),
                     diff_srv_rate=(-3.0, 1.0), dst_host_count=(0.6, 0.5),
                     payload_entropy=(6.5, 0.4)),
           {"tcp": 1.0}, _WEB, {"SF": 0.9, "RSTO": 0.1}),  # injection, XSS
    ),
    "botnet": (
        _p(1.0, dict(duration=(2.5, 0.4), src_bytes=(5.0, 0.3), dst_bytes=(5.0, 0.3),
                     packets=(2.2, 0.3), count=(0.3, 0.4), srv_count=(0.3, 0.4),
                     serror_rate=(-4.5, 1.0), rerror_rate=(-4.5, 1.0), same_srv_rate=(2.5, 1.0),
                     diff_srv_rate=(-3.0, 1.0), dst_host_count=(0.3, 0.4),
                     payload_entropy=(7.6, 0.2)),
           {"tcp": 0.7, "udp": 0.3}, {"irc": 0.5, "http": 0.3, "private": 0.2},
           {"SF": 1.0}),  # command-and-control beacons
    ),
}


def _correlation() -> np.ndarray:
    """Within-profile correlation: bigger flows last longer and carry more bytes and packets;
    busy hosts have many same-service connections; error kinds and service mixes trade off."""
    idx = {n: i for i, n in enumerate(_NAMES)}
    r = np.eye(len(_NAMES))

    def put(a: str, b: str, v: float) -> None:
        r[idx[a], idx[b]] = r[idx[b], idx[a]] = v

    for a, b in (("duration", "src_bytes"), ("duration", "dst_bytes"), ("duration", "packets"),
                 ("src_bytes", "dst_bytes"), ("src_bytes", "packets"), ("dst_bytes", "packets")):
        put(a, b, 0.5)
    put("count", "srv_count", 0.7)
    put("count", "dst_host_count", 0.3)
    put("serror_rate", "rerror_rate", -0.3)
    put("same_srv_rate", "diff_srv_rate", -0.6)
    put("payload_entropy", "src_bytes", 0.3)
    return np.linalg.cholesky(r)


_CHOL = _correlation()
_TAIL_DOF = 5.0  # Student-t degrees of freedom of the feature jitter
CATEGORICAL_NOISE = 0.04  # share of rows whose categoricals are redrawn uniformly
DEFAULT_LABEL_NOISE = 0.003  # share of attack rows mislabelled as normal, as in real captures

# Normalisation fixed by the schema: mean and standard deviation of each transformed
# feature over default-weighted traffic (measured once on 400k rows, seed 0).
_FIXED: dict[str, tuple[float, float]] = {
    "duration": (0.9106, 1.3027),
    "src_bytes": (5.1143, 2.5979),
    "dst_bytes": (5.4330, 3.7001),
    "packets": (2.2729, 1.6098),
    "count": (2.2603, 1.6404),
    "srv_count": (2.1513, 1.5858),
    "serror_rate": (0.1127, 0.2300),
    "rerror_rate": (0.1140, 0.2194),
    "same_srv_rate": (0.8080, 0.2218),
    "diff_srv_rate": (0.1386, 0.1987),
    "dst_host_count": (0.9938, 1.0065),
    "failed_logins": (0.0269, 0.2139),
    "payload_entropy": (4.4465, 2.2134),
}

SCHEMA = FeatureSchema(
    schema_id=SCHEMA_ID,
    numeric=tuple(
        NumericFeature(n, "log1p" if kind == "log" else "identity", _FIXED[n])
        for n, kind in _NUMERIC
    ),
    categorical=(
        CategoricalFeature("protocol", PROTOCOLS),
        CategoricalFeature("service", SERVICES),
        CategoricalFeature("flag", FLAGS),
    ),
    classes=class_list(FAMILIES),
)


def _choose(rng: np.random.Generator, dist: Mapping[str, float], n: int) -> np.ndarray:
    keys = list(dist)
    p = np.array([dist[k] for k in keys], dtype=np.float64)
    return np.asarray(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def _check_families(families: Iterable[str] | None) -> tuple[str, ...]:
    if families is None:
        return FAMILIES
    chosen = tuple(families)
    bad = [f for f in chosen if f not in FAMILIES]
    if bad:
        raise DataError(
            f"the synthetic generator has no family {', '.join(map(repr, bad))}",
            hint=f"its families are {', '.join(FAMILIES)}",
        )
    return tuple(f for f in FAMILIES if f in chosen)


def generate_raw(
    n_records: int,
    seed: int,
    *,
    families: Iterable[str] | None = None,
    weights: Mapping[str, float] | None = None,
    label_noise: float = DEFAULT_LABEL_NOISE,
) -> RawFlows:
    """Raw (unencoded) synthetic flows; see :func:`generate`."""
    if not isinstance(n_records, (int, np.integer)) or n_records < 0:
        raise DataError(f"n_records must be a non-negative integer, got {n_records!r}")
    if not 0.0 <= label_noise < 1.0:
        raise DataError(f"label_noise must be in [0, 1), got {label_noise!r}")
    fams = _check_families(families)
    w = dict(DEFAULT_WEIGHTS if weights is None else weights)
    unknown = [k for k in w if k != NORMAL and k not in FAMILIES]
    if unknown or any(not np.isfinite(v) or v < 0 for v in w.values()):
        raise DataError(f"bad class weights {w!r}",
                        hint=f"give non-negative weights for normal and {', '.join(FAMILIES)}")
    classes = (NORMAL, *fams)
    p = np.array([w.get(c, 0.0) for c in classes], dtype=np.float64)
    if p.sum() <= 0:
        raise DataError("class weights of the chosen classes sum to zero")
    rng = np.random.default_rng(seed)
    cls = rng.choice(len(classes), size=n_records, p=p / p.sum())

    latent = np.empty((n_records, len(_NAMES)), dtype=np.float64)
    cats = {k: np.empty(n_records, dtype=object) for k in ("protocol", "service", "flag")}
    for ci, c in enumerate(classes):
        rows = np.flatnonzero(cls == ci)
        profiles = PROFILES[c]
        pw = np.array([pr.weight for pr in profiles])
        which = rng.choice(len(profiles), size=rows.size, p=pw / pw.sum())
        for pi, pr in enumerate(profiles):
            r = rows[which == pi]
            z = rng.standard_normal((r.size, len(_NAMES))) @ _CHOL.T
            tail = np.sqrt(_TAIL_DOF / rng.chisquare(_TAIL_DOF, size=(r.size, 1)))
            latent[r] = np.asarray(pr.mu) + np.asarray(pr.sd) * z * tail
            cats["protocol"][r] = _choose(rng, pr.protocol, r.size)
            cats["service"][r] = _choose(rng, pr.service, r.size)
            cats["flag"][r] = _choose(rng, pr.flag, r.size)

    # Categorical noise: some rows get uniformly redrawn values (mis-parsed exports,
    # odd stacks), so categoricals alone never identify a family.
    for k, vocab in (("protocol", PROTOCOLS), ("service", SERVICES + _RARE_SERVICES),
                     ("flag", FLAGS)):
        noisy = np.flatnonzero(rng.random(n_records) < CATEGORICAL_NOISE)
        cats[k][noisy] = np.asarray(vocab, dtype=object)[rng.integers(len(vocab), size=noisy.size)]

    numeric: dict[str, np.ndarray] = {}
    for j, (name, kind) in enumerate(_NUMERIC):
        v = latent[:, j]
        if kind == "log":
            x = np.expm1(np.maximum(v, 0.0))
            x = np.round(x) if name in _INTEGER else np.round(x, 3)
        elif kind == "rate":
            x = np.round(1.0 / (1.0 + np.exp(-v)), 2)
        else:
            x = np.round(np.clip(v, 0.0, 8.0), 3)
        numeric[name] = x

    fam = np.asarray(classes, dtype=object)[cls]
    flip = (cls != 0) & (rng.random(n_records) < label_noise)
    fam[flip] = NORMAL
    return RawFlows(numeric=numeric, categorical=cats, families=fam, source_labels=fam.copy())


def generate(
    n_records: int,
    seed: int,
    *,
    families: Iterable[str] | None = None,
    weights: Mapping[str, float] | None = None,
    label_noise: float = DEFAULT_LABEL_NOISE,
) -> FlowDataset:
    """``n_records`` synthetic flows, encoded by the ``synthetic/v1`` schema.

    The same ``(n_records, seed, families, weights)`` give identical arrays.
    ``families`` restricts which attack families are *generated* (e.g. one
    organisation's view); ``classes`` always lists all of the schema's families
    so every party shares one label space. ``weights`` overrides the class shares
    (keys ``normal`` and family names; see :data:`DEFAULT_WEIGHTS`).
    """
    raw = generate_raw(n_records, seed, families=families, weights=weights,
                       label_noise=label_noise)
    return SCHEMA.encode(raw, Normaliser.fixed(SCHEMA))
