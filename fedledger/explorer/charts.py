"""Charts and the lineage graph as SVG drawn on the server: no script, no library, works offline.

Every text that comes from the chain or the store is escaped; each point carries a
``<title>`` so a browser shows its value on hover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f", "#64748b", "#a16207")
VERDICT_COLOURS = {"verified": "#16a34a", "failed": "#dc2626", "mismatch": "#dc2626", "disputed": "#d97706", "unverifiable": "#d97706", "genesis": "#2563eb", "pending": "#94a3b8"}
MARKERS_UP_TO = 60  # points drawn as dots up to this many per series; beyond, the line alone


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = (hi - lo) / (n - 1)
    return [lo + i * step for i in range(n)]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str = "round",
    width: int = 640,
    height: int = 260,
    css_class: str = "chart",
) -> Markup:
    """One polyline per series over shared axes, a legend, and a tooltip per point."""
    points = [p for s in series.values() for p in s]
    left, right, top, bottom = 56, 150, 28, 34
    pw, ph = width - left - right, height - top - bottom
    out = [f'<svg class="{css_class}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<text class="title" x="{left}" y="16">{escape(title)}</text>']  # fmt: skip
    if not points:
        out.append(f'<text class="empty" x="{left + 10}" y="{top + ph / 2}">no data yet</text></svg>')
        return Markup("".join(out))
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    if y1 == y0:
        y1 = y0 + 1
    if x1 == x0:
        x1 = x0 + 1

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    for t in _ticks(y0, y1):
        out.append(f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>'
                   f'<text class="tick" x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')  # fmt: skip
    for t in sorted({round(v) for v in _ticks(x0, x1, min(6, int(x1 - x0) + 1))}):
        out.append(f'<text class="tick" x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t}</text>')
    out.append(f'<text class="axis" x="{left + pw / 2}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<rect class="frame" x="{left}" y="{top}" width="{pw}" height="{ph}"/>')
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        pts = sorted(pts)
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline class="series" data-series="{escape(name)}" fill="none" stroke="{colour}" points="{path}"/>')
        if len(pts) <= MARKERS_UP_TO:
            for x, y in pts:
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                           f'<title>{escape(name)}, {escape(x_label)} {_fmt(x)}: {_fmt(y)}</title></circle>')  # fmt: skip
        ly = top + 12 + i * 16
        out.append(f'<rect x="{left + pw + 12}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
                   f'<text class="legend" x="{left + pw + 27}" y="{ly}">{escape(name[:20])}</text>')  # fmt: skip
    out.append("</svg>")
    return Markup("".join(out))


def lineage_graph(models: Sequence[Mapping], others: Sequence[Mapping], *, per_row: int = 10) -> Markup:
    """Genesis → each finalised round's model, left to right in rows; other rounds (aborted, open) hang below
    the model they started from. Each node links to its round; its colour is its verdict."""
    cell_w, cell_h, r = 86, 96, 15
    rows = max(1, -(-len(models) // per_row))
    width, height = per_row * cell_w + 20, rows * cell_h + 20
    pos: dict[str, tuple[float, float]] = {}
    out = [f'<svg class="lineage" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           'aria-label="model lineage" xmlns="http://www.w3.org/2000/svg">']  # fmt: skip
    centres = []
    for i, node in enumerate(models):
        row, col = divmod(i, per_row)
        if row % 2:  # a snake, so each step stays next to the one before
            col = per_row - 1 - col
        centres.append((20 + col * cell_w + cell_w / 2 - 10, 30 + row * cell_h))
        pos.setdefault(str(node["model"]), centres[-1])
    for (xa, ya), (xb, yb), node in zip(centres, centres[1:], models[1:]):
        cls = "edge" if node.get("links_previous", True) else "edge broken"
        out.append(f'<line class="{cls}" x1="{xa:.0f}" y1="{ya:.0f}" x2="{xb:.0f}" y2="{yb:.0f}"/>')
    for other in others:
        base = pos.get(str(other["base"]))
        if base is None:
            continue
        bx, by = base
        k = sum(1 for o in others if pos.get(str(o["base"])) == base and o["round"] < other["round"])
        ox, oy = bx + (k - 0.5) * 18, by + 36 + (k % 2) * 4
        out.append(f'<line class="edge side" x1="{bx:.0f}" y1="{by:.0f}" x2="{ox:.0f}" y2="{oy:.0f}"/>'
                   f'<a href="/rounds/{int(other["round"])}"><rect class="node side" x="{ox - 7:.0f}" y="{oy - 7:.0f}" '
                   f'width="14" height="14"><title>round {int(other["round"])}: {escape(str(other["verdict"]))} '
                   f'(base {escape(str(other["base"]))})</title></rect></a>')  # fmt: skip
    for (x, y), node in zip(centres, models):
        colour = VERDICT_COLOURS.get(str(node["verdict"]), "#94a3b8")
        label = "G" if node["round"] == 0 else str(int(node["round"]))
        href = "/lineage" if node["round"] == 0 else f'/rounds/{int(node["round"])}'
        out.append(f'<a href="{href}"><circle class="node" data-round="{int(node["round"])}" data-verdict="{escape(str(node["verdict"]))}" '
                   f'cx="{x:.0f}" cy="{y:.0f}" r="{r}" fill="{colour}"><title>'
                   f'{"genesis" if node["round"] == 0 else "round " + label}: {escape(str(node["verdict"]))}\n'
                   f'model {escape(str(node["model"]))}</title></circle>'
                   f'<text class="node-label" x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle">{label}</text></a>')  # fmt: skip
    out.append("</svg>")
    return Markup("".join(out))
