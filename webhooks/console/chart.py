"""The Overview's chart: callbacks per minute over the last hour, stacked by outcome, as inline SVG (no JS)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT, LEFT, BOTTOM = 720, 180, 40, 20
# Outcome groups, bottom to top, with their colours: what was stored first, refusals on top.
GROUPS = (
    ("accepted", "#1e7a3c"),
    ("duplicate", "#8fa3b8"),
    ("refused", "#e08a00"),
    ("503", "#b3261e"),
    ("error", "#6a1b9a"),
)


def group(outcome: str) -> str:
    return "refused" if outcome.startswith("refused:") else outcome


def callbacks_chart(minutes: Sequence[dict[str, Any]]) -> Markup:
    """One stacked bar per minute (every provider together); a legend and a title per bar say the numbers."""
    stacks = []
    for m in minutes:
        per: dict[str, int] = {}
        for key, n in m["counts"].items():
            if key[0] == "callback":
                per[group(key[2])] = per.get(group(key[2]), 0) + n
        stacks.append((m["minute"], per))
    top = max([sum(per.values()) for _, per in stacks] + [1])
    step = (WIDTH - LEFT) / max(len(stacks), 1)
    plot = HEIGHT - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="callbacks per minute over the last hour, by outcome">',
        f'<text x="0" y="10" class="axis">{top}</text><text x="0" y="{plot}" class="axis">0</text>',
        f'<line x1="{LEFT}" y1="{plot}" x2="{WIDTH}" y2="{plot}" stroke="#d9dee5"/>',
    ]
    for i, (minute, per) in enumerate(stacks):
        x, y = LEFT + i * step, float(plot)
        label = datetime.fromtimestamp(minute * 60, timezone.utc).strftime("%H:%M")
        title = ", ".join(f"{n} {name}" for name, n in per.items() if n) or "none"
        parts.append(f"<g><title>{escape(label)} UTC: {escape(title)}</title>")
        parts.append(f'<rect x="{x:.1f}" y="0" width="{step:.1f}" height="{plot}" fill="transparent"/>')
        for name, colour in GROUPS:
            n = per.get(name, 0)
            if n:
                h = n / top * (plot - 12)
                y -= h
                parts.append(
                    f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                    f'fill="{colour}" data-outcome="{name}"/>'
                )
        parts.append("</g>")
        if i % 10 == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 4}" class="axis">{label}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><span class="swatch" style="background:{colour}"></span>{name}</span>'
        for name, colour in GROUPS
    )
    return Markup("".join(parts) + f'<p class="legend">{legend}</p>')
