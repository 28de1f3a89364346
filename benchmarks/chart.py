"""PNG charts from result JSON lines: median wall time per tool (p10–p90 bars), log scale,
one panel per result file; a soak file plots RSS and poll time over time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

_COLORS = {"raw": "#555555", "ss": "#d95f02", "pyroute2": "#7570b3", "xtcp-sockets": "#66a61e",
           "xtcp-uring": "#1b9e77", "xtcp-uring-async": "#0b5d8f", "xtcp-uring-inline": "#e6ab02"}


def _load(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _bars(ax, rows: list[dict]) -> None:
    tools = [r for r in rows if r.get("kind") == "tool" and r.get("wall_ms_median") is not None]
    names = [r["tool"] for r in tools]
    med = [r["wall_ms_median"] for r in tools]
    lo = [max(0.0, m - (r.get("wall_ms_p10") or m)) for m, r in zip(med, tools)]
    hi = [max(0.0, (r.get("wall_ms_p90") or m) - m) for m, r in zip(med, tools)]
    y = range(len(tools))
    ax.barh(list(y), med, xerr=[lo, hi], color=[_COLORS.get(n, "#999999") for n in names], capsize=3)
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("wall ms per poll (median, p10–p90)")
    for i, r in enumerate(tools):
        ratio = r.get("ratio_vs_raw")
        label = f"{r['wall_ms_median']:.1f} ms" + (f"  ×{ratio:.2f} raw" if ratio and not math.isnan(ratio) else "")
        ax.text((r["wall_ms_median"] + hi[i]) * 1.15, i, label, va="center", fontsize=8)
    first = tools[0] if tools else {}
    ehash = "private TCP hash" if first.get("private_ehash") else "host's TCP hash"
    ax.set_title(f"{first.get('scenario', '?')}: {first.get('sockets', '?')} sockets, "
                 f"{first.get('namespaces', '?')} namespaces, {ehash} (load {first.get('loadavg_start', 0):.1f})",
                 fontsize=10)
    if med:
        ax.set_xlim(min(med) / 2, max(m + h for m, h in zip(med, hi)) * 8)


def _soak(ax, rows: list[dict]) -> None:
    series = {r["name"]: r["points"] for r in rows if r.get("kind") == "series"}
    rss = series.get("rss_mb", [])
    ax.plot([p[0] for p in rss], [p[1] for p in rss], color="#0b5d8f", label="RSS, batch alive")
    idle = series.get("rss_idle_mb", [])
    if idle:
        ax.plot([p[0] for p in idle], [p[1] for p in idle], color="#0b5d8f", linestyle="--", linewidth=0.8,
                label="RSS, between polls")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS MB", color="#0b5d8f")
    ax.set_ylim(0, max([p[1] for p in rss] + [150]) * 1.1)
    ax.axhline(150, color="#0b5d8f", linestyle=":", linewidth=1)
    ax2 = ax.twinx()
    poll = series.get("poll_ms", [])
    ax2.plot([p[0] for p in poll], [p[1] for p in poll], color="#d95f02", linewidth=0.7, label="poll+encode ms")
    ax2.set_ylabel("poll + encode ms", color="#d95f02")
    ax2.set_ylim(0, max([p[1] for p in poll] + [1]) * 1.3)
    tool = next((r for r in rows if r.get("kind") == "tool"), {})
    ax.set_title(f"soak: {tool.get('sockets', '?')} sockets, 1 poll/s, {tool.get('tool', '').split(':')[-1]}",
                 fontsize=10)


def chart_files(paths: list[Path], png: Path) -> None:
    """One panel per JSON-lines file, stacked, written to ``png``."""
    groups = [_load(Path(p)) for p in paths]
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 2.2 + 2.4 * len(groups)), squeeze=False)
    for ax, rows in zip(axes[:, 0], groups):
        if any(r.get("kind") == "series" for r in rows):
            _soak(ax, rows)
        else:
            _bars(ax, rows)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
