"""The demo's report: the tables it prints, report.md, and the PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def show_event(console: Console, kind: str, info: dict) -> None:
    if kind == "opened":
        console.print(f"[bold]round {info['round']}[/] opened (gas {info.get('gas', 0):,})")
    elif kind == "aborted":
        console.print(f"[red]round {info['round']} aborted: {info.get('reason')}")
    elif kind == "retry":
        console.print(f"[yellow]retrying after: {info.get('error')}")


def print_round(console: Console, row: dict, procs: list[Any]) -> None:
    if not row["finalized"]:
        console.print(f"round {row['round']}: aborted ({row.get('reason')})")
        return
    m = row["test_metrics"]
    t = Table(title=f"round {row['round']}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} (test set); gas {row['gas']['total']:,}")
    for col in ("organisation", "score", "update bytes", "submit gas", "status", "flags"):
        t.add_column(col, justify="right" if col not in ("organisation", "flags") else "left")
    flags = {e["name"]: ", ".join(f["reason"] for f in e["flags"]) for e in row.get("participants", [])}
    for p in procs:
        status = "absent" if p.name in row["absent"] else ("rejected: " + str(row["rejected"][p.name]) if p.name in row["rejected"] else "accepted")
        t.add_row(
            p.name + (f" [red]({p.attack})[/]" if p.attack else ""), str(row["scores"].get(p.name, "-")),
            f"{row['update_bytes'].get(p.name, 0):,}", f"{row['gas']['submit'].get(p.name, 0):,}", status, flags.get(p.name) or "-",
        )  # fmt: skip
    console.print(t)


def print_audit(console: Console, report) -> None:  # noqa: ANN001
    t = Table(title=f"audit of {report.ledger}: {'every round verified' if report.ok else 'DISCREPANCIES'}")
    for col in ("round", "state", "verdict", "accepted", "rejected", "seconds", "details"):
        t.add_column(col)
    for v in report.rounds:
        t.add_row(
            str(v.round_id), v.state, "[green]verified" if v.ok else "[red]MISMATCH", str(v.accepted), str(v.rejected),
            f"{v.seconds:.2f}", "; ".join(v.mismatches + v.notes)[:200],
        )  # fmt: skip
    console.print(t)
    for m in report.mismatches:
        console.print(f"[red]{m}")


def print_privacy(console: Console, privacy: dict[str, dict[str, Any]], names: dict[str, str]) -> None:
    t = Table(title="privacy spend (verified by the audit)")
    for col in ("organisation", "rounds", "epsilon per round", "ledger total (naive sum)", "composed total"):
        t.add_column(col)
    for addr, spend in privacy.items():
        per = ", ".join(f"{r['epsilon']:.3f}" for r in spend["rounds"])
        t.add_row(names.get(addr, addr), str(len(spend["rounds"])), per, f"{spend['ledger_total_epsilon']:.3f}",
                  f"{spend['composed_epsilon']:.3f} ({spend['accountant'].upper()}, delta {spend['delta']:g})")  # fmt: skip
    console.print(t)


def write_markdown(path: Path, r: dict) -> None:
    lines = [
        "# fedledger demo report", "",
        f"- dataset: {r['dataset']} (split `{r['split']}`), {r['participants']} organisations, strategy {r['strategy']}, codec {r['codec']}",
        f"- ledger: `{r['ledger']}`; federation descriptor: `{r['descriptor']}`; deploy gas {r['deploy_gas']:,}",
        f"- audit: **{'every round verified' if r['audit']['ok'] else 'DISCREPANCIES FOUND'}**", "",
        "## Organisations", "", "| organisation | address | flows | attack flows by family |", "|---|---|---:|---|",
    ]  # fmt: skip
    for o in r["organisations"]:
        lines.append(f"| {o['name']} | `{o['address']}` | {o['flows']:,} | {', '.join(o['families']) or '-'} |")
    names = [o["name"] for o in r["organisations"]]
    lines += ["", "## Rounds", "", "| round | accuracy | macro-F1 | gas | audit | " + " | ".join(f"{n} score" for n in names) + " |",
              "|---:|---:|---:|---:|---|" + "---:|" * len(names)]  # fmt: skip
    for row in r["rounds"]:
        if not row["finalized"]:
            lines.append(f"| {row['round']} | aborted | | {row['gas']['total']:,} | | " + " | ".join("" for _ in names) + " |")
            continue
        m = row["test_metrics"]
        audit = "verified" if row.get("audit") and row["audit"]["ok"] else "MISMATCH"
        lines.append(
            f"| {row['round']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {row['gas']['total']:,} | {audit} | "
            + " | ".join(str(row["scores"].get(n, "-")) for n in names) + " |"
        )
    flagged = [(row["round"], e) for row in r["rounds"] for e in row.get("participants", []) if e["flags"] or e.get("attack")]
    if flagged:
        lines += ["", "## Planted attackers and flags", "", "| round | organisation | planted | score | aggregated | flags |",
                  "|---:|---|---|---:|---|---|"]  # fmt: skip
        for rnd, e in flagged:
            why = "; ".join(f"{f['reason']}: {f['detail']}" for f in e["flags"]) or "-"
            lines.append(f"| {rnd} | {e['name']} | {e.get('attack') or '-'} | {e['score']} | {'yes' if e['accepted'] else 'no'} | {why} |")
    lines += ["", "## Update bytes", "", "| round | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for row in r["rounds"]:
        lines.append(f"| {row['round']} | " + " | ".join(f"{row['update_bytes'].get(n, 0):,}" for n in names) + " |")
    if r.get("privacy"):
        lines += ["", "## Privacy spend (epsilon per round; totals at delta " + f"{r['dp']['delta']:g})", "",
                  "| organisation | " + " | ".join(f"round {row['round']}" for row in r["rounds"])
                  + " | ledger total (naive sum) | composed (audit) | budget |",
                  "|---|" + "---:|" * (len(r["rounds"]) + 3)]  # fmt: skip
        for n in names:
            spend = r["privacy"].get(n)
            per = [f"{row.get('privacy', {}).get(n, {}).get('epsilon', 0):.3f}" if n in row.get("privacy", {}) else "-"
                   for row in r["rounds"]]  # fmt: skip
            total = f"{spend['ledger_total_epsilon']:.3f} | {spend['composed_epsilon']:.3f}" if spend else "- | -"
            budget = r["dp"]["budget"]
            lines.append(f"| {n} | " + " | ".join(per) + f" | {total} | {'-' if budget is None else f'{budget:g}'} |")
    lines += ["", "![metrics](metrics.png)", "", "![scores](scores.png)", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def plot(out: Path, r: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fin = [row for row in r["rounds"] if row["finalized"]]
    xs = [row["round"] for row in fin]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [row["test_metrics"]["accuracy"] for row in fin], marker="o", label="accuracy")
    ax.plot(xs, [row["test_metrics"]["macro_f1"] for row in fin], marker="s", label="macro-F1")
    ax.set_xlabel("round")
    ax.set_ylabel("test metric")
    ax.set_title("global model per round")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "metrics.png", dpi=110)
    plt.close(fig)

    names = [o["name"] for o in r["organisations"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(fin))
    for k, row in enumerate(fin):
        ax.bar(np.arange(len(names)) + k * width, [row["scores"].get(n, 0) for n in names], width, label=f"round {row['round']}")
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_ylabel("leave-one-out score (1e-4 macro-F1)")
    ax.set_title("contribution scores per organisation")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "scores.png", dpi=110)
    plt.close(fig)
