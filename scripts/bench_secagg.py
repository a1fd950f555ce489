#!/usr/bin/env python3
"""Secure aggregation against public mode: seconds and bytes per round for one member and for the coordinator.

For n members (5, 20, 50) and models of d parameters (about 10k, 100k, 1M: a one-hidden-layer
MLP over the synthetic flow schema, widened to d), one round of the protocol is run in this
process with the code the services use (federation.secagg): every member deals its signed,
encrypted shares, quantises and masks a real update, judges every peer's masked update and
reveals its shares; then the coordinator (or any auditor) unmasks the sum. The chain and the
store are left out: their costs are the same in both modes (one transaction per phase, a
content-addressed put per file) and are measured by bench_e2e and bench_gas.

Columns, all on one core (torch and BLAS pinned to one thread):

* train s: the member's local training for the round (TrainingSettings() defaults, the
  member's records below), the yardstick for the member's added time;
* member +s: what secure aggregation adds for one member: dealing, checking the peers'
  bundles, quantising and masking, judging the peers' masked updates, revealing;
  public +s: encoding the update with the default codec (int8, blocks of 256);
* up / down: bytes one member puts into and reads from the store in the round (its share
  bundle, masked update and reveal bundle; the peers' bundles and masked updates);
  public: its update up, nothing down (the coordinator fetches);
* unmask s and MB/s: the coordinator's (and every auditor's) unmasking, every member in the
  sum, over n x (4d + 4) bytes of masked input; "1 dropped": the same with one member
  dropped after sharing (its pairwise masks rebuilt from the survivors' key shares);
  public agg s: decoding the n public updates and the FedAvg aggregate.

Usage: .venv/bin/python scripts/bench_secagg.py [--members 5,20,50] [--params 1e4,1e5,1e6] [--records 6000] [--json OUT]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.messages import encode_defunct  # noqa: E402

from federation.model import ModelSpec  # noqa: E402
from federation.model.network import init_model  # noqa: E402
from federation.rounds.strategies import FedAvg, WeightedUpdate  # noqa: E402
from federation.secagg import (  # noqa: E402
    MaskedSubmission,
    RoundSecrets,
    SecureParams,
    SecureRound,
    check_bundle,
    deal,
    encode_masked,
    mask_vector,
    quantise_update,
    reveal,
    unmask,
)
from federation.secagg.unmask import judge_masked  # noqa: E402
from federation.updates import UpdateHeader, decode_update  # noqa: E402
from flows.synthetic import generate  # noqa: E402
from participant.update import RoundTask, TrainingSettings, encode_round, train_round  # noqa: E402

CHAIN_ID = 31337
LEDGER = "0x" + "42" * 20
BASE = "ab" * 32


def _spec(d: int, data) -> ModelSpec:  # noqa: ANN001
    width = data.features.shape[1]
    k = len(data.classes)
    hidden = max(1, round((d - k) / (width + 1 + k)))  # width*h + h + h*k + k parameters
    return ModelSpec(data.schema_id, width, (hidden,), tuple(data.classes))


def _timed(fn):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_case(n: int, d: int, records: int) -> dict:
    data = generate(records, 7)
    spec = _spec(d, data)
    base = init_model(spec, 1)
    settings = TrainingSettings()
    accounts = [Account.create() for _ in range(n)]
    member_keys = {a.address: X25519PrivateKey.generate() for a in accounts}
    params = SecureParams.for_members(n)
    rnd = SecureRound(CHAIN_ID, LEDGER, 1, params, {a: k.public_key().public_bytes_raw() for a, k in member_keys.items()})
    members = rnd.members
    by_addr = {a.address: a for a in accounts}
    me = members[0]

    def signer(addr: str):  # noqa: ANN202
        acct = by_addr[addr]
        return lambda digest: bytes(acct.sign_message(encode_defunct(primitive=digest)).signature)

    # The member's training, the yardstick (deterministic without DP).
    task = RoundTask(1, me, bytes.fromhex(BASE), 3, CHAIN_ID, LEDGER)
    trained, train_s = _timed(lambda: train_round(task, spec, base, data, settings))

    # Public mode: encode with the default codec.
    (blob, _, _), public_s = _timed(lambda: encode_round(task, spec, trained, settings, None))

    # Secure mode, every member: deal. Only member 0's costs are the member's; all are needed for the round.
    secrets = {m: RoundSecrets.fresh() for m in members}
    bundles_bytes, deal_s = {}, 0.0
    for m in members:
        b, s = _timed(lambda m=m: deal(rnd, m, secrets[m], member_keys[m], signer(m)).to_bytes())
        bundles_bytes[m] = b
        if m == me:
            deal_s = s
    peers, check_s = _timed(lambda: {m: check_bundle(rnd, m, bundles_bytes[m]) for m in members})
    values = quantise_update(trained.delta, spec, trained.num_samples, params)
    rng = np.random.default_rng(5)

    def header(m: str) -> UpdateHeader:
        return UpdateHeader(m, 1, BASE, spec.digest(), trained.num_samples, chain_id=CHAIN_ID, ledger=LEDGER, masked=True)

    masked, mask_s = {}, 0.0
    for m in members:
        # Every member masks an update of its own (member 0 its trained one; the others a jittered copy).
        own = values if m == me else (values + rng.integers(-64, 64, values.size, dtype=np.int64).astype(np.uint32))
        if m != me:
            own[-1] = values[-1]
        blob_m, s = _timed(lambda m=m, own=own: encode_masked(header(m), mask_vector(rnd, m, secrets[m], own, peers)))
        masked[m] = blob_m
        if m == me:
            mask_s = s
    subs = [MaskedSubmission(m, trained.num_samples, 0, masked[m]) for m in members]
    _, judge_s = _timed(lambda: [judge_masked(s.data, rnd, spec, s, BASE) for s in subs if s.participant != me])
    reveals = {}
    reveal_s = 0.0
    for m in members:
        r, s = _timed(lambda m=m: reveal(rnd, m, member_keys[m], peers, set(members)).to_bytes())
        reveals[m] = r
        if m == me:
            reveal_s = s
    member_s = deal_s + check_s + mask_s + judge_s + reveal_s
    up = len(bundles_bytes[me]) + len(masked[me]) + len(reveals[me])
    down = sum(len(bundles_bytes[m]) + len(masked[m]) for m in members if m != me)

    out, unmask_s = _timed(lambda: unmask(rnd, spec, BASE, bundles_bytes, subs, reveals))
    assert len(out.survivors) == n
    masked_input = sum(len(b) for b in masked.values())

    # One member dropped after sharing: the survivors reveal its key shares instead of its seed's.
    gone = members[-1]
    survivors = set(members) - {gone}
    reveals_1 = {m: reveal(rnd, m, member_keys[m], peers, survivors).to_bytes() for m in survivors}
    subs_1 = [s for s in subs if s.participant != gone]
    # (the survivors' vectors were masked with the dropped member too: that is the case being measured)
    out1, unmask1_s = _timed(lambda: unmask(rnd, spec, BASE, bundles_bytes, subs_1, reveals_1))
    assert out1.dropped == [gone]

    # Public aggregate of n updates.
    def public_round():  # noqa: ANN202
        def stream():  # noqa: ANN202
            for i, m in enumerate(members):
                _, delta = decode_update(blob, spec)
                yield WeightedUpdate(m, trained.num_samples + i, delta)

        return FedAvg().aggregate(base, stream())

    _, public_agg_s = _timed(public_round)
    return {
        "members": n, "params": spec.num_parameters(), "records": records, "train_s": train_s,
        "member_secure_s": member_s, "member_public_s": public_s,
        "phases_s": {"deal": deal_s, "check": check_s, "mask": mask_s, "judge": judge_s, "reveal": reveal_s},
        "up_secure": up, "down_secure": down, "up_public": len(blob),
        "bundle_bytes": len(bundles_bytes[me]), "masked_bytes": len(masked[me]), "reveal_bytes": len(reveals[me]),
        "unmask_s": unmask_s, "unmask_mb_s": masked_input / unmask_s / 1e6, "unmask_1_dropped_s": unmask1_s,
        "public_agg_s": public_agg_s,
    }  # fmt: skip


def _kb(b: int) -> str:
    return f"{b / 1e6:.2f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", default="5,20,50")
    ap.add_argument("--params", default="1e4,1e5,1e6")
    ap.add_argument("--records", type=int, default=6000, help="each member's flow records (NSL-KDD's 126k training flows over 20 members)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    warm = generate(512, 1)  # torch's first training step pays its start-up: not the round's
    train_round(RoundTask(1, "0x" + "11" * 20, bytes(32), 1), _spec(1000, warm), init_model(_spec(1000, warm), 1), warm,
                TrainingSettings())  # fmt: skip
    rows = []
    for n in [int(x) for x in args.members.split(",")]:
        for d in [int(float(x)) for x in args.params.split(",")]:
            rows.append(run_case(n, d, args.records))
            r = rows[-1]
            print(f"  n={n} d={r['params']}: done", file=sys.stderr, flush=True)
    head = ("n", "d", "train s", "member +s", "(x train)", "public +s", "up", "down", "public up", "unmask s", "MB/s",
            "1 dropped s", "public agg s")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" for _ in head) + "|")
    for r in rows:
        cells = (r["members"], r["params"], f"{r['train_s']:.2f}", f"{r['member_secure_s']:.2f}",
                 f"{r['member_secure_s'] / r['train_s']:.2f}", f"{r['member_public_s']:.3f}", _kb(r["up_secure"]),
                 _kb(r["down_secure"]), _kb(r["up_public"]), f"{r['unmask_s']:.2f}", f"{r['unmask_mb_s']:.0f}",
                 f"{r['unmask_1_dropped_s']:.2f}", f"{r['public_agg_s']:.3f}")  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")
    # Bytes per member: up = a + b*n + c*d, fitted from the runs (each file's size is exact, not sampled).
    if len(rows) >= 3:
        a = np.array([[1, r["members"], r["params"]] for r in rows], dtype=float)
        coef, *_ = np.linalg.lstsq(a, np.array([r["up_secure"] for r in rows], dtype=float), rcond=None)
        print(f"\nbytes one member puts per round ~ {coef[0]:.0f} + {coef[1]:.0f}*n + {coef[2]:.2f}*d")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
