"""`fedledger demo`: the whole federation on this machine, then the audit and a report."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fedledger.cli.common import console


def demo(
    participants: int = typer.Option(5, "--participants", "-n", help="Organisations (separate OS processes)."),
    rounds: int = typer.Option(5, "--rounds", "-r", help="Rounds to finalise."),
    out: Path = typer.Option(Path("demo-out"), "--out", help="Report folder: a new one, or one an earlier demo wrote (replaced)."),
    dataset: str = typer.Option("synthetic", "--dataset", help="synthetic, nsl-kdd, unsw-nb15 or cicids2017."),
    train: Path = typer.Option(None, "--train", help="Training file of a real data set."),
    test: Path = typer.Option(None, "--test", help="Test file (default: a stratified hold-out of --train)."),
    ipfs_api: str = typer.Option(None, "--ipfs-api", help="Use this Kubo node instead of the embedded store."),
    split: str = typer.Option(
        "dirichlet:0.5", "--split",
        help="How flows are dealt to organisations: dirichlet:ALPHA (skewed attack mixes), families (each sees only some "
        "attack families; needs ~20 rounds, see docs/learning.md) or iid.",
    ),
    strategy: str = typer.Option(
        None, "--strategy",
        help="fedavg-classwise (default; fedavg under secure aggregation), fedavg, fedavgm, fedadam, median, trimmed-mean or multi-krum.",
    ),
    strategy_param: list[str] = typer.Option([], "--strategy-param", help="KEY=VALUE for the strategy (repeatable), e.g. trim=0.2."),
    clip_norm: float = typer.Option(None, "--clip-norm", help="Clip every update to this L2 norm before aggregating."),
    scoring: str = typer.Option("leave-one-out", "--scoring", help="Contribution scores: leave-one-out or gtg-shapley."),
    attack: list[str] = typer.Option(
        [], "--attack", help="Plant attackers, KIND:COUNT (repeatable); KIND: label-flip, sign-flip, scale10, scale100, "
        "same-value, copy, copy-noise, free-ride, free-ride-noise."
    ),
    codec: str = typer.Option("int8:256", "--codec", help="Update codec, e.g. none, int8:256, topk:0.05+int8:256."),
    round_seconds: int = typer.Option(90, "--round-seconds", help="Deadline of each round."),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="Print report.json on stdout."),
    dp_epsilon: float = typer.Option(None, "--dp-epsilon", help="Members train under DP: target epsilon per round."),
    dp_delta: float = typer.Option(None, "--dp-delta", help="DP delta (default 1e-5)."),
    dp_budget: float = typer.Option(None, "--dp-budget", help="Each member's total composed epsilon budget."),
    privacy: str = typer.Option(
        "public", "--privacy", help="public, or secure-aggregation: members' updates are masked and only their sum is revealed."
    ),
    explore: bool = typer.Option(False, "--explore", help="After the audit, keep the chain running and serve the explorer until Ctrl-C."),
) -> None:
    """Run a local federation end to end: chain, store, organisations, coordinator, audit, report."""
    from fedledger.cli.simulate_cmd import _parse_strategy_params
    from fedledger.demo import DemoOptions, run_demo
    from participant.dp_training import dp_from_options

    params = _parse_strategy_params(strategy_param)
    if clip_norm is not None:
        params["clip_norm"] = clip_norm

    dp_from_options(dp_epsilon, dp_delta, dp_budget)  # refuse bad settings before anything starts
    result = run_demo(
        DemoOptions(
            participants=participants, rounds=rounds, out=out, dataset=dataset, train=train, test=test,
            ipfs_api=ipfs_api, split=split, strategy=strategy, codec=codec, round_seconds=round_seconds, seed=seed,
            dp_epsilon=dp_epsilon, dp_delta=dp_delta, dp_budget=dp_budget, strategy_params=params, attacks=tuple(attack), scoring=scoring,
            explore=explore, privacy=privacy,
        ),
        console,
    )  # fmt: skip
    if json_out:
        print(json.dumps(result, indent=2, sort_keys=True))
    if not result["audit"]["ok"]:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
