"""The local demo: a whole federation on one machine, every part real.

A local anvil chain, the embedded store (or a Kubo node), the compiled ledger,
N organisations as separate OS processes each holding a different non-IID slice
of the flows, the coordinator, and finally the audit re-deriving every round.
Writes a report folder: report.json, report.md and PNG plots.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from faults import FedLedgerError
from federation import recipe
from fedledger.cli.common import status_text
from fedledger.demo.outdir import prepare_out
from fedledger.demo.report import (
    plot,
    print_audit,
    print_privacy,
    print_round,
    show_event,
    write_markdown,
)
from fedledger.intel import demo_outputs

ORG_NAMES = ("First Bank", "City Hospital", "SecureOps MSSP", "National CERT", "Telco One", "Health Net", "Pay Corp", "Grid Energy")


@dataclass
class DemoOptions:
    participants: int = 5
    rounds: int = 5
    out: Path = Path("demo-out")
    dataset: str = "synthetic"
    train: Path | None = None
    test: Path | None = None
    ipfs_api: str | None = None
    split: str = "dirichlet:0.5"
    records: int = 30000
    round_seconds: int = 90
    strategy: str | None = None  # None: the default recipe's (federation.recipe)
    codec: str = "int8:256"
    epochs: int = 2
    lr: float = 0.005
    seed: int = 0
    min_updates: int | None = None
    dp_epsilon: float | None = None  # per-round target; None = no DP
    dp_delta: float | None = None
    dp_budget: float | None = None
    strategy_params: dict[str, Any] = field(default_factory=dict)  # e.g. trim, f, m, clip_norm
    scoring: str = "leave-one-out"
    attacks: tuple[str, ...] = ()  # planted attackers, "KIND:COUNT" (fedledger.attacks.kinds)
    explore: bool = False  # after the audit, keep the chain and serve the explorer until Ctrl-C
    privacy: str = "public"  # or "secure-aggregation": only the sum of the members' updates is ever in the clear


@dataclass
class OrgProcess:
    index: int
    name: str
    address: str
    dir: Path
    records: int
    families: list[str]
    attack: str | None = None  # the planted misbehaviour, None for an honest organisation
    proc: subprocess.Popen | None = None
    events: list[dict] = field(default_factory=list)

    @property
    def events_path(self) -> Path:
        return self.dir / "events.jsonl"

    def start(self, account, chain: list[str], extra: list[str]) -> None:  # noqa: ANN001
        """Run ``fedledger participant run`` for this organisation as its own OS process.

        The key travels in the child's environment, never on its command line (``ps`` shows argv).
        """
        env = dict(os.environ, FEDLEDGER_PRIVATE_KEY=account.key.hex(), PYTHONUNBUFFERED="1")
        # An honest organisation runs `fedledger participant run`; a planted attacker runs the same command
        # through fedledger.attacks.member (the real command has no way to misbehave).
        entry = ["fedledger.attacks.member", "--attack", self.attack] if self.attack else ["fedledger", "participant", "run"]
        cmd = [
            sys.executable, "-m", *entry, *chain, "--data", str(self.dir / "flows.flowset"),
            "--state-dir", str(self.dir / "state"), "--events", *extra,
        ]  # fmt: skip
        with open(self.events_path, "wb") as ev, open(self.dir / "participant.log", "wb") as lg:
            self.proc = subprocess.Popen(cmd, stdout=ev, stderr=lg, env=env, stdin=subprocess.DEVNULL)

    def read_events(self) -> list[dict]:
        out = []
        if self.events_path.exists():
            for line in self.events_path.read_text(encoding="utf-8").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a line being written
        self.events = out
        return out


def chain_args(rpc_url: str, ledger: str, chain_id: int, descriptor: str, store_dir: Path, ipfs_api: str | None) -> list[str]:
    """The options that point a participant process at this federation."""
    return [
        "--rpc-url", rpc_url, "--ledger", ledger, "--chain-id", str(chain_id), "--descriptor", descriptor,
        *(["--ipfs-api", ipfs_api] if ipfs_api else ["--store", str(store_dir)]),
    ]  # fmt: skip


def _load_data(opts: DemoOptions):  # noqa: ANN202
    """(train pool, public validation set, test set, normaliser record) in the dataset's schema.

    The demo's organisations together hold the whole training pool, so the normaliser fitted on
    it equals the one merged from their aggregate statistics (sums add up exactly).
    """
    from flows.synthetic import generate

    if opts.dataset == "synthetic":
        # The validation pool is split at deployment into the public validation set and the scoring hold-outs.
        return generate(opts.records, opts.seed), generate(6000, opts.seed + 1), generate(6000, opts.seed + 2), None
    from flows import load_split

    split = load_split(opts.dataset, opts.train, opts.test, seed=opts.seed)
    train, test = split.train, split.test
    # The public validation set is a stratified slice of the held-out data, disjoint from the test rows we report.
    rng = np.random.default_rng(opts.seed)
    idx = rng.permutation(len(test))
    cut = max(1, len(test) // 3)
    return train, test.subset(np.sort(idx[:cut])), test.subset(np.sort(idx[cut:])), split.normaliser.to_dict()


def run_demo(opts: DemoOptions, console: Console | None = None) -> dict[str, Any]:
    from contracts.anvil import LocalAnvil
    from coordinator.service import CoordinatorService, CoordinatorSettings
    from federation.flowset import flowset_bytes
    from federation.metrics import evaluate
    from federation.model import load_model_bytes
    from federation.rounds.strategies import strategy_from_name
    from fedledger.attacks.kinds import AttackSpec, plant
    from fedledger.audit import Auditor
    from fedledger.deploy import create_federation
    from flows.partition import partition
    from ipfs import digest_to_cid, open_store

    console = console or Console(stderr=True)
    if opts.participants < 1 or opts.rounds < 1:
        raise FedLedgerError("the demo needs at least one participant and one round")
    attack_specs = [AttackSpec.parse(a) for a in opts.attacks]  # bad options fail before anything starts
    privacy = _privacy(opts, attack_specs)
    strategy = opts.strategy or recipe.default_strategy(opts.privacy)
    strategy_from_name(strategy, **opts.strategy_params)
    out = prepare_out(opts.out)
    store_dir = out / "store"
    store = open_store(None if opts.ipfs_api else store_dir, opts.ipfs_api)

    console.rule("[bold]fedledger demo")
    t_start = time.perf_counter()
    train, validation, test, normaliser = _load_data(opts)
    parts = partition(train.labels, opts.participants, opts.split, opts.seed, classes=train.classes)
    strategy_params = recipe.with_mean_cap(strategy, opts.strategy_params, len(train), opts.participants)
    console.print(
        f"data: {opts.dataset}, {len(train):,} training flows split '{opts.split}' over {opts.participants} "
        f"organisations; public validation {len(validation):,}; test {len(test):,}"
    )

    # A block every second besides one per transaction: a round whose members do not all submit
    # closes at its deadline, as on a real network (an automine-only chain's clock stops between transactions).
    with LocalAnvil(accounts=opts.participants + 2, state_path=out / "chain-state.json", block_time=1) as chain:
        admin, coordinator_key, *orgs = chain.accounts
        min_updates = opts.min_updates or max(1, (opts.participants * 3 + 4) // 5)
        holdout_dir = out / "coordinator" / "holdouts"  # the coordinator's private copy of the scoring hold-outs
        fed = create_federation(
            rpc_url=chain.rpc_url, admin=admin, store=store, name="fedledger-demo", validation=validation,
            coordinator=coordinator_key.address, strategy=strategy, strategy_params=strategy_params,
            min_updates=min_updates, seed=opts.seed, scoring=opts.scoring, normaliser=normaliser,
            holdout_dir=holdout_dir, reveal_seconds=15, abort_grace=max(60, opts.round_seconds), privacy=privacy,
        )  # fmt: skip
        planted = plant([a.address for a in orgs], attack_specs, opts.seed) if attack_specs else {}
        ledger = fed.ledger
        console.print(f"ledger {ledger.address} on {chain.rpc_url} (deploy gas {fed.deploy_gas:,}); descriptor {fed.descriptor_cid}")

        procs: list[OrgProcess] = []
        for i, (acct, idx) in enumerate(zip(orgs, parts, strict=True)):
            name = ORG_NAMES[i] if i < len(ORG_NAMES) else f"Org {i + 1}"
            ledger.register_participant(acct.address, name)
            local = train.subset(idx)
            counts = np.bincount(local.labels, minlength=len(train.classes))
            # The organisation's attack mix, largest family first (normal traffic left out).
            fams = [f"{train.classes[c]} {counts[c]:,}" for c in np.argsort(-counts, kind="stable") if c != 0 and counts[c]]
            d = out / "orgs" / f"org-{i + 1}"
            d.mkdir(parents=True)
            (d / "flows.flowset").write_bytes(flowset_bytes(local))
            procs.append(OrgProcess(i, name, acct.address, d, len(local), fams, planted.get(acct.address)))

        table = Table(title="organisations")
        for col in ("org", "address", "flows", "attack flows by family", "planted attacker"):
            table.add_column(col)
        for p in procs:
            table.add_row(p.name, p.address, f"{p.records:,}", ", ".join(p.families) or "-", p.attack or "-")
        console.print(table)

        for p, acct in zip(procs, orgs, strict=True):
            p.start(
                acct, chain_args(chain.rpc_url, ledger.address, chain.chain_id, fed.descriptor_cid, store_dir, opts.ipfs_api),
                ["--rounds", str(opts.rounds), "--epochs", str(opts.epochs), "--lr", str(opts.lr), "--codec", opts.codec,
                 *_dp_args(opts)],
            )  # fmt: skip

        rounds_report: list[dict[str, Any]] = []
        timings: dict[str, float] = {}
        open_gas: dict[int, int] = {}  # the coordinator reports each openRound's gas as it happens
        try:
            with console.status("waiting for the first round…") as status:

                def on_event(kind: str, info: dict) -> None:
                    if kind == "opened":
                        open_gas[info["round"]] = int(info.get("gas", 0))
                    show_event(console, kind, info)
                    status.update(status_text(kind, info))

                coordinator = CoordinatorService(
                    ledger.with_account(coordinator_key), store, fed.descriptor_cid,
                    settings=CoordinatorSettings(round_seconds=opts.round_seconds, holdout_dir=holdout_dir),
                    on_event=on_event,
                )  # fmt: skip
                outcomes = coordinator.run(rounds=opts.rounds)
        finally:
            for p in procs:
                if p.proc and p.proc.poll() is None:
                    try:
                        p.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.proc.terminate()
                        p.proc.wait(timeout=10)

        for p in procs:
            p.read_events()
        for o in outcomes:
            r = o.round_id
            row: dict[str, Any] = {"round": r, "finalized": o.finalized}
            gas = {"finalize" if o.finalized else "abort": o.gas_used}
            info = ledger.get_round(r)
            gas["open"] = open_gas.get(r, 0)
            submits: dict[str, int] = {}
            update_bytes: dict[str, int] = {}
            privacy: dict[str, dict[str, Any]] = {}
            for p in procs:
                for ev in p.events:
                    if ev.get("event") == "submitted" and ev.get("round_id") == r:
                        submits[p.name] = int(ev.get("gas_used", 0))
                        update_bytes[p.name] = int(ev.get("update_bytes", 0))
                        if ev.get("privacy"):
                            # this round's spend, and the member's own composed total so far
                            privacy[p.name] = {"epsilon": ev["privacy"]["epsilon_milli"] / 1000,
                                               "composed_epsilon": ev["privacy"]["composed_epsilon"]}  # fmt: skip
            gas["submit"] = submits
            gas["total"] = gas.get("open", 0) + sum(submits.values()) + o.gas_used
            row["gas"] = gas
            row["update_bytes"] = update_bytes
            if privacy:
                row["privacy"] = privacy
            if o.finalized and o.result is not None:
                _, weights = load_model_bytes(store.get(digest_to_cid(info.global_model)), fed.descriptor.spec)
                row["test_metrics"] = _clean(evaluate(weights, fed.descriptor.spec, test))
                row["validation_metrics"] = o.result.metrics
                by_addr = {p.address: p.name for p in procs}
                row["scores"] = {by_addr.get(a, a): s for a, s in o.result.scores.items()}
                row["rejected"] = {by_addr.get(v.participant, v.participant): v.reason for v in o.result.verdicts if not v.accepted}
                row["absent"] = [by_addr.get(a, a) for a in o.result.manifest["absent"]]
                attack_of = {p.address: p.attack for p in procs}
                row["participants"] = [
                    {"name": by_addr.get(e["participant"], e["participant"]), "address": e["participant"],
                     "attack": attack_of.get(e["participant"]), "score": e["score"],
                     "accepted": e["status"] == "accepted" and e.get("aggregated", True),
                     "status": e["status"], "reason": e["reason"], "flags": e.get("flags", [])}
                    for e in o.result.manifest["submissions"]
                ]  # fmt: skip
                row["global_model"] = digest_to_cid(info.global_model)
                row["manifest"] = digest_to_cid(info.manifest)
            else:
                row["reason"] = o.reason
            row["timings"] = o.timings
            rounds_report.append(row)
            print_round(console, row, procs)

        console.rule("audit")
        t_audit = time.perf_counter()
        report = Auditor(ledger, store, descriptor_cid=fed.descriptor_cid).audit()
        timings["audit"] = time.perf_counter() - t_audit
        verdicts = {v.round_id: v for v in report.rounds}
        for row in rounds_report:
            v = verdicts.get(row["round"])
            row["audit"] = {"ok": v.ok, "mismatches": v.mismatches, "notes": v.notes} if v else None
        print_audit(console, report)
        if report.privacy:
            print_privacy(console, report.privacy, {p.address: p.name for p in procs})
        intel = demo_outputs(out, ledger, store, fed.descriptor_cid, test, audited=report.ok, console=console)
        if opts.explore:
            from fedledger.explorer import explore_demo

            explore_demo(ledger, store, fed.descriptor_cid, out, console)

    timings["total"] = time.perf_counter() - t_start
    by_name = {p.address: p.name for p in procs}
    result = {
        "dataset": opts.dataset,
        "split": opts.split,
        "participants": opts.participants,
        "rounds_requested": opts.rounds,
        "strategy": fed.descriptor.strategy,
        "strategy_params": dict(fed.descriptor.strategy_params),
        "scoring": fed.descriptor.scoring["rule"],
        "privacy_mode": fed.descriptor.privacy_mode,
        "codec": opts.codec if fed.descriptor.privacy_mode == "public" else "masked fixed point (secure aggregation)",
        "ledger": ledger.address,
        "descriptor": fed.descriptor_cid,
        "deploy_gas": fed.deploy_gas,
        "organisations": [
            {"name": p.name, "address": p.address, "flows": p.records, "families": p.families, "attack": p.attack,
             "exit_code": p.proc.returncode if p.proc else None}
            for p in procs
        ],  # fmt: skip
        "rounds": rounds_report,
        "audit": report.to_dict(),
        "timings": timings,
        "dp": None if opts.dp_epsilon is None else {"epsilon_per_round": opts.dp_epsilon, "delta": opts.dp_delta or 1e-5,
                                                   "budget": opts.dp_budget},  # fmt: skip
        # per organisation, from the audit: verified per-round spend, the ledger's naive sum, the composed total
        "privacy": {by_name.get(a, a): spend for a, spend in report.privacy.items()},
        "intel": intel,  # detection on the test flows: alerts.jsonl, bundle.json (STIX 2.1), misp-event.json
    }
    (out / "report.json").write_text(json.dumps(result, indent=2, sort_keys=True), encoding="utf-8")
    write_markdown(out / "report.md", result)
    plot(out, result)
    console.print(f"report written to {out}/ (report.json, report.md, metrics.png, scores.png)")
    return result


def _privacy(opts: DemoOptions, attacks: list) -> dict[str, Any] | None:
    """The descriptor's privacy section for ``--privacy``; secure aggregation sized for the demo's members."""
    from federation.secagg import SecureParams

    if opts.privacy == "public":
        return None
    if opts.privacy != "secure-aggregation":
        raise FedLedgerError(f"unknown privacy mode {opts.privacy!r}", hint="use public or secure-aggregation")
    if attacks:
        raise FedLedgerError(
            "the planted attacks are caught by comparing updates in the clear; secure aggregation shows only their sum",
            hint="run the attacks in public mode",
        )
    if opts.participants < 2:
        raise FedLedgerError("secure aggregation needs at least two members")
    return SecureParams.for_members(opts.participants, share_seconds=30).to_privacy()


def _dp_args(opts: DemoOptions) -> list[str]:
    args: list[str] = []
    for flag, value in (("--dp-epsilon", opts.dp_epsilon), ("--dp-delta", opts.dp_delta), ("--dp-budget", opts.dp_budget)):
        if value is not None:
            args += [flag, repr(float(value))]
    return args


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return round(float(obj), 6)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
