"""``fedledger simulate``: the learning-only federation (no chain, no store)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from faults import FedLedgerError
from federation import recipe

DATASETS = ("synthetic", "nsl-kdd", "unsw-nb15", "cicids2017")


def _parse_strategy_params(items: list[str]) -> dict[str, float | int | None]:
    params: dict[str, float | int | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FedLedgerError(f"--strategy-param {item!r} is not KEY=VALUE", hint="e.g. --strategy-param momentum=0.9")
        if value.lower() == "none":
            params[key] = None
            continue
        try:
            params[key] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            raise FedLedgerError(f"--strategy-param {item!r}: {value!r} is not a number") from None
    return params


def simulate(
    dataset: str = typer.Option("synthetic", "--dataset", help=f"One of: {', '.join(DATASETS)}."),
    train: Path | None = typer.Option(None, "--train", help="Training file (or directory) for a real data set."),
    test: Path | None = typer.Option(None, "--test", help="Test file; without it a part of --train is held out (--holdout)."),
    holdout: str = typer.Option(
        "stratified", "--holdout", help="Without --test: stratified (a share of every class) or novel (whole attack names "
        "kept out of training, plus a share of the others; docs/learning.md lists them)."
    ),
    participants: int = typer.Option(5, "--participants", "-n", help="Number of organisations."),
    split: str = typer.Option("iid", "--split", help="iid | dirichlet:ALPHA | families"),
    rounds: int = typer.Option(10, "--rounds", "-r", help="Federated rounds."),
    codec: str = typer.Option("none", "--codec", help="none | int8[:BLOCK] | topk:FRAC+int8[:BLOCK] (+zstd:LEVEL)"),
    no_error_feedback: bool = typer.Option(False, "--no-error-feedback", help="Drop what the codec loses instead of carrying it."),
    strategy: str = typer.Option(
        None, "--strategy",
        help="fedavg | fedavg-classwise | fedavgm | fedadam | median | trimmed-mean | multi-krum "
             "(default fedavg-classwise; fedavg with --privacy secure-aggregation, which reveals only sums)",
    ),  # fmt: skip
    strategy_param: list[str] = typer.Option([], "--strategy-param", help="KEY=VALUE for the strategy (repeatable), e.g. trim=0.2, f=2."),
    clip_norm: float = typer.Option(None, "--clip-norm", help="Clip every update to this L2 norm before aggregating (any strategy)."),
    attack: list[str] = typer.Option(
        [], "--attack", help="Plant attackers, KIND:COUNT (repeatable); KIND: label-flip, sign-flip, scale10, scale100, "
        "same-value, copy, copy-noise, free-ride, free-ride-noise."
    ),
    scoring: str = typer.Option("leave-one-out", "--scoring", help="Contribution scores: leave-one-out | gtg-shapley."),
    local_epochs: int = typer.Option(recipe.EPOCHS, "--local-epochs", help="Local epochs per round."),
    batch_size: int = typer.Option(recipe.BATCH_SIZE, "--batch-size"),
    lr: float = typer.Option(recipe.LR, "--lr", help="Local learning rate (Adam)."),
    mu: float = typer.Option(0.0, "--mu", help="FedProx proximal coefficient (0 = FedAvg)."),
    class_weights: str = typer.Option(recipe.CLASS_WEIGHTS, "--class-weights", help="balanced | sqrt | none"),
    absent_class_scale: float = typer.Option(
        recipe.ABSENT_CLASS_SCALE, "--absent-class-scale", help="FedRS: scale of locally absent classes' logits (1 = off, 0 = fully restricted)."
    ),
    logit_calibration: float = typer.Option(
        recipe.LOGIT_CALIBRATION, "--logit-calibration", help="FedLC: tau of the margin tau*n_c^-1/4 held classes train against (0 = off)."
    ),
    hidden: str = typer.Option("64,32", "--hidden", help="Hidden layer sizes, comma-separated."),
    activation: str = typer.Option("relu", "--activation", help="Hidden activation: relu or tanh."),
    seed: int = typer.Option(0, "--seed"),
    personal_epochs: int = typer.Option(
        0, "--personal-epochs", help="Each member fine-tunes the final global model this many epochs; per-member report (0 = off)."
    ),
    pretrain_fraction: float = typer.Option(
        0.0, "--pretrain-fraction",
        help="Transfer learning: this share of the training data is public and the genesis is pretrained on it (0 = off).",
    ),
    pretrain_epochs: int = typer.Option(5, "--pretrain-epochs", help="Epochs of the genesis pretraining."),
    baselines: bool = typer.Option(False, "--baselines", help="Also train centralised and local-only baselines."),
    records: int = typer.Option(20_000, "--records", help="Synthetic data set size (training part)."),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Skip and count malformed rows instead of failing."),
    json_out: Path = typer.Option(..., "--json", help="Where to write the per-round results (JSON)."),
    dp_epsilon: float = typer.Option(None, "--dp-epsilon", help="Record-level DP: target epsilon per round (off by default)."),
    dp_delta: float = typer.Option(None, "--dp-delta", help="DP delta (default 1e-5; must be below 1/records of each member)."),
    dp_budget: float = typer.Option(None, "--dp-budget", help="Each member's total composed epsilon; it sits out rounds beyond it."),
    dp_clip: float = typer.Option(None, "--dp-clip", help="Per-sample gradient clipping norm (default 1.0)."),
    privacy: str = typer.Option(
        "public", "--privacy", help="public, or secure-aggregation: the real masking protocol, only the sum unmasked."
    ),
) -> None:
    """Run a learning-only federated simulation and write per-round metrics to --json."""
    if dataset not in DATASETS:
        raise FedLedgerError(f"unknown data set {dataset!r}", hint=f"use one of {', '.join(DATASETS)}")
    if dataset != "synthetic" and train is None:
        raise FedLedgerError(f"--dataset {dataset} needs --train FILE", hint="e.g. --train KDDTrain+_20Percent.txt")
    if holdout not in ("stratified", "novel"):
        raise FedLedgerError(f"--holdout {holdout!r} is not stratified or novel")
    if holdout == "novel" and test is not None:
        raise FedLedgerError("--holdout novel cuts the test set from --train; it takes no --test", hint="drop --test or --holdout")
    if holdout == "novel" and dataset == "synthetic":
        raise FedLedgerError("--holdout novel needs a data set with several attack names per family",
                             hint="use --dataset nsl-kdd, unsw-nb15 or cicids2017 with --train")  # fmt: skip
    if class_weights not in ("balanced", "sqrt", "none"):
        raise FedLedgerError(f"--class-weights {class_weights!r} is not balanced, sqrt or none")
    try:
        hidden_sizes = tuple(int(h) for h in hidden.split(",") if h.strip())
    except ValueError:
        raise FedLedgerError(f"--hidden {hidden!r} is not a comma-separated list of sizes", hint="e.g. --hidden 64,32") from None
    from fedledger.attacks.kinds import AttackSpec

    for a in attack:
        AttackSpec.parse(a)  # a typo fails before any data is loaded
    if scoring not in ("leave-one-out", "gtg-shapley"):
        raise FedLedgerError(f"--scoring {scoring!r} is not leave-one-out or gtg-shapley")
    params = _parse_strategy_params(strategy_param)
    if clip_norm is not None:
        params["clip_norm"] = clip_norm
    from fedledger.simulate import (  # torch loads only when simulating
        SimulationConfig,
        run_simulation,
    )
    from participant.dp_training import dp_from_options

    dp = dp_from_options(dp_epsilon, dp_delta, dp_budget, clip=dp_clip)  # bad settings fail before any data is loaded

    cfg = SimulationConfig(
        dataset=dataset, train=str(train) if train else None, test=str(test) if test else None,
        participants=participants, split=split, rounds=rounds, codec=codec, error_feedback=not no_error_feedback,
        strategy=strategy or recipe.default_strategy(privacy), strategy_params=params, local_epochs=local_epochs, attacks=tuple(attack), scoring=scoring,
        batch_size=batch_size, lr=lr, mu=mu, hidden=hidden_sizes, absent_class_scale=absent_class_scale,
        logit_calibration=logit_calibration, activation=activation, personal_epochs=personal_epochs,
        class_weights=None if class_weights == "none" else class_weights, seed=seed, baselines=baselines,
        synthetic_records=records, on_bad_row="skip" if skip_bad_rows else "error", holdout=holdout,
        dp_epsilon=dp.epsilon if dp else None, dp_delta=dp.delta if dp else 1e-5, dp_budget=dp.budget if dp else None,
        dp_clip=dp.clip_norm if dp else 1.0, privacy=privacy, pretrain_fraction=pretrain_fraction,
        pretrain_epochs=pretrain_epochs,
    )  # fmt: skip
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def on_progress(kind: str, done: int, total: int) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task("local training" if kind == "train" else "baselines", total=total)
            bar.update(tasks[kind], completed=done, total=total)

        result = run_simulation(cfg, on_progress)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result, indent=1, sort_keys=True))
    final = result["final"]
    console.print(
        f"round {len(result['rounds'])}: accuracy {final['accuracy']:.4f}, macro-F1 {final['macro_f1']:.4f}, "
        f"FPR {final['fpr']:.4f}; wrote {json_out}"
    )
    novel = result["rounds"][-1].get("novel")
    if novel is not None:
        console.print(
            f"novel-attack hold-out: known names macro-F1 {novel['known']['macro_f1']:.4f}; {novel['rows']:,} rows of "
            f"novel names, {novel['detection_rate']:.1%} flagged as attacks, family recall "
            + ", ".join(f"{f} {r:.2f}" for f, r in novel["family_recall"].items())
        )
    if "privacy" in result:
        spent = result["privacy"]["participants"].values()
        console.print(
            f"privacy: composed epsilon per member {min(p['composed_epsilon'] for p in spent):.3f}-"
            f"{max(p['composed_epsilon'] for p in spent):.3f} (naive sum up to {max(p['naive_sum_epsilon'] for p in spent):.3f}) "
            f"at delta {result['privacy']['settings']['delta']:g}"
        )


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the root command."""
    app.command("simulate")(simulate)
