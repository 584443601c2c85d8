"""A health report as one self-contained HTML page: inline SVG plots, no scripts, no downloads.

Torch-free and dependency-free, so the control plane renders a report from its JSON body
(`service.services.reports`) and a browser opens the file from the artifact store as it is.
"""

import html
from typing import Any

__all__ = ["render_html"]

COLOURS = {
    "ok": "#2e7d32",
    "warn": "#ef8f00",
    "rot": "#c62828",
    "candidate": "#1565c0",
    "reference": "#9e9e9e",
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
.verdict { display: inline-block; padding: 0.2rem 0.8rem; border-radius: 1rem; color: white; }
table { border-collapse: collapse; margin: 1rem 0; }
td, th { padding: 0.3rem 0.7rem; border-bottom: 1px solid #ddd; }
th { text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg { display: block; margin: 0.5rem 0 1.5rem; } .note { color: #666; font-size: 0.9rem; }
"""


def render_html(report: dict[str, Any]) -> str:
    """The page of a report body (see `service.services.reports.build_report` for its fields)."""
    title = f"Health report: {report['lineage']}@{report['version']}"
    reference = "the base model" if report["reference_version"] == 0 else f"v{report['reference_version']}"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='sub'>{html.escape(report['id'])} · against {reference} · "
        f"{html.escape(report['origin'])}</p>",
        f"<p>Overall verdict: {_badge(report['verdict'])}"
        + (f" · gate: <b>{html.escape(report['gate'])}</b>" if report.get("gate") else "")
        + "</p>",
        "<h2>Suites against the reference</h2>",
        _suite_table(report["suites"]),
        _effect_plot(report["suites"]),
        "<p class='note'>Hedges' g is positive when the version is worse than the reference; the bar "
        "spans the 95% paired bootstrap interval. <code>rot</code>: g above the suite's threshold with "
        "the interval excluding zero.</p>",
    ]
    skipping = report.get("thought_skipping")
    if skipping:
        parts += ["<h2>Thought skipping in failed chain-of-thought answers</h2>", _bars(skipping)]
    retention = report.get("retention")
    if retention and retention["versions"]:
        parts += [
            "<h2>Retention: recall of each job's probes by each version</h2>",
            _heatmap(retention),
            "<h2>Retention curves</h2>",
            _curves(retention),
        ]
    trend = report.get("trend")
    if trend and trend["versions"]:
        parts += ["<h2>Trend across versions (mean item score per suite)</h2>", _trend(trend)]
    body = "\n".join(parts)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _badge(verdict: str) -> str:
    return f"<span class='verdict' style='background:{COLOURS[verdict]}'>{html.escape(verdict)}</span>"


def _suite_table(suites: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td class='num'>{s['items']}</td>"
        f"<td class='num'>{s['candidate']:.3f}</td><td class='num'>{s['reference']:.3f}</td>"
        f"<td class='num'>{s['g']:+.2f}</td><td class='num'>[{s['low']:+.2f}, {s['high']:+.2f}]</td>"
        f"<td>{_badge(s['verdict'])}</td></tr>"
        for name, s in suites.items()
    )
    names = ("suite", "items", "version", "reference", "g", "95% CI", "")
    head = "<tr>" + "".join(f"<th>{name}</th>" for name in names) + "</tr>"
    return f"<table>{head}{rows}</table>"


def _effect_plot(suites: dict[str, Any]) -> str:
    """Hedges' g per suite with its interval, on a shared axis around zero."""
    if not suites:
        return ""
    width, row, left = 640, 34, 130
    values = [v for s in suites.values() for v in (s["low"], s["high"], s["g"])] + [-1.0, 1.0]
    low, high = min(values), max(values)

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * (width - left - 20)

    items = [
        f"<line x1='{x(0):.1f}' y1='0' x2='{x(0):.1f}' y2='{row * len(suites)}' stroke='#444'/>",
    ]
    for i, (name, s) in enumerate(suites.items()):
        y = row * i + row / 2
        colour = COLOURS[s["verdict"]]
        items += [
            f"<text x='0' y='{y + 4:.1f}' font-size='13'>{html.escape(name)}</text>",
            f"<line x1='{x(s['low']):.1f}' y1='{y:.1f}' x2='{x(s['high']):.1f}' y2='{y:.1f}' "
            f"stroke='{colour}' stroke-width='3'/>",
            f"<circle cx='{x(s['g']):.1f}' cy='{y:.1f}' r='6' fill='{colour}'/>",
        ]
    return _svg(width, row * len(suites) + 4, items)


def _bars(counts: dict[str, int]) -> str:
    width, row, left = 640, 26, 130
    most = max(counts.values()) or 1
    items = []
    for i, (name, count) in enumerate(counts.items()):
        y = row * i
        length = (width - left - 60) * count / most
        items += [
            f"<text x='0' y='{y + 17}' font-size='13'>{html.escape(name)}</text>",
            f"<rect x='{left}' y='{y + 4}' width='{length:.1f}' height='{row - 8}' "
            f"fill='{COLOURS['warn']}'/>",
            f"<text x='{left + length + 6:.1f}' y='{y + 17}' font-size='13'>{count}</text>",
        ]
    return _svg(width, row * len(counts), items)


def _heatmap(retention: dict[str, Any]) -> str:
    """R[version][job]: one cell per measured entry, darker for higher recall."""
    matrix, versions, jobs = retention["matrix"], retention["versions"], retention["jobs"]
    cell, left, top = 48, 60, 24
    items = [
        f"<text x='{left + cell * j + cell / 2}' y='16' font-size='12' text-anchor='middle'>"
        f"job {j + 1}</text>"
        for j in range(len(jobs))
    ]
    for i, version in enumerate(versions):
        items.append(f"<text x='0' y='{top + cell * i + cell / 2 + 4}' font-size='12'>v{version}</text>")
        for j, value in enumerate(matrix[i]):
            if value is None:
                continue
            shade = int(235 - 200 * value)
            ink = "white" if value > 0.55 else "#222"
            x, y = left + cell * j, top + cell * i
            items += [
                f"<rect x='{x}' y='{y}' width='{cell - 2}' height='{cell - 2}' "
                f"fill='rgb({shade},{shade},255)'/>",
                f"<text x='{x + cell / 2 - 1}' y='{y + cell / 2 + 4}' font-size='12' text-anchor='middle' "
                f"fill='{ink}'>{value:.2f}</text>",
            ]
    return _svg(left + cell * len(jobs) + 10, top + cell * len(versions) + 10, items)


def _curves(retention: dict[str, Any]) -> str:
    """Each job's recall across the versions after it."""
    series = {
        f"job {j + 1}": [
            (version, row[j]) for version, row in zip(retention["versions"], retention["matrix"], strict=True)
        ]
        for j in range(len(retention["jobs"]))
    }
    return _lines(series, [float(v) for v in retention["versions"]], 0.0, 1.0)


def _trend(trend: dict[str, Any]) -> str:
    series = {
        suite: list(zip(trend["versions"], means, strict=True)) for suite, means in trend["suites"].items()
    }
    values = [v for points in series.values() for _, v in points if v is not None]
    return _lines(
        series, [float(v) for v in trend["versions"]], min(values, default=0.0), max(values, default=1.0)
    )


def _lines(
    series: dict[str, list[tuple[int, float | None]]], xs: list[float], low: float, high: float
) -> str:
    palette = ("#1565c0", "#c62828", "#2e7d32", "#ef8f00", "#6a1b9a", "#00838f", "#5d4037")
    width, height, left, bottom = 640, 220, 50, 30
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = (high - low) or 1.0

    def point(x: float, y: float) -> str:
        px = left + (x - min(xs)) / span_x * (width - left - 130)
        py = (height - bottom) - (y - low) / span_y * (height - bottom - 10)
        return f"{px:.1f},{py:.1f}"

    items = [
        f"<line x1='{left}' y1='{height - bottom}' x2='{width - 120}' y2='{height - bottom}' stroke='#444'/>",
        f"<text x='4' y='14' font-size='11'>{high:.2f}</text>",
        f"<text x='4' y='{height - bottom}' font-size='11'>{low:.2f}</text>",
    ]
    items += [
        f"<text x='{point(x, low).split(',')[0]}' y='{height - 10}' font-size='11' text-anchor='middle'>"
        f"{'base' if x == 0 else f'v{int(x)}'}</text>"
        for x in xs
    ]
    for k, (name, points) in enumerate(series.items()):
        colour = palette[k % len(palette)]
        measured = [point(x, y) for x, y in points if y is not None]
        if measured:
            items.append(
                f"<polyline points='{' '.join(measured)}' fill='none' stroke='{colour}' stroke-width='2'/>"
            )
            items += [
                f"<circle cx='{p.split(',')[0]}' cy='{p.split(',')[1]}' r='3' fill='{colour}'/>"
                for p in measured
            ]
        items.append(
            f"<text x='{width - 110}' y='{16 + 16 * k}' font-size='12' fill='{colour}'>"
            f"{html.escape(name)}</text>"
        )
    return _svg(width, height, items)


def _svg(width: float, height: float, items: list[str]) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
        f"viewBox='0 0 {width:.0f} {height:.0f}'>{''.join(items)}</svg>"
    )
