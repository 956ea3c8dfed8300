"""The Overview's charts: callbacks per minute over the last hour, stacked by outcome, as inline SVG (no JS).

Refusals are stacked by reason (their HTTP status), each its own colour; `charts` draws one for every
provider together and, when more than one provider had callbacks in the hour, one small chart each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple

from markupsafe import Markup, escape

WIDTH, HEIGHT, SMALL, LEFT, BOTTOM = 720, 180, 110, 40, 20
# Outcomes, bottom to top, with their colours and what they mean: what was stored first, failures on top.
OUTCOMES = {
    "accepted": ("#1e7a3c", "accepted"),
    "duplicate": ("#8fa3b8", "duplicate"),
    "refused:400": ("#f6b26b", "refused 400: payload unreadable or invalid"),
    "refused:401": ("#e08a00", "refused 401: secret wrong or missing"),
    "refused:403": ("#9c5700", "refused 403: address not allowed"),
    "refused:413": ("#d9c27a", "refused 413: body too large"),
    "refused:415": ("#7a4a1e", "refused 415: content type not accepted"),
    "refused:429": ("#ff5a36", "refused 429: throttled after failed secrets"),
    "503": ("#b3261e", "503: Redis was down"),
    "error": ("#6a1b9a", "error: 500"),
}
OTHER = "#5b6675"  # an outcome this release does not name (a later release's refusal status)

Minutes = list[tuple[int, Counter[str]]]


class Chart(NamedTuple):
    """One chart: whose callbacks (None: every provider's), its SVG and legend, its hour's total."""

    provider: str | None
    markup: Markup
    total: int


def charts(minutes: Sequence[dict[str, Any]]) -> list[Chart]:
    """Every provider together, then one small chart per provider with callbacks in the hour (if several)."""
    everyone = [callbacks_chart(minutes)]
    providers = sorted({key[1] for m in minutes for key in m["counts"] if key[0] == "callback"})
    if len(providers) < 2:
        return everyone
    return everyone + [callbacks_chart(minutes, p, SMALL) for p in providers]


def per_minute(minutes: Sequence[dict[str, Any]], provider: str | None = None) -> Minutes:
    """(unix minute, outcome -> callbacks) for one provider, or every provider summed."""
    out = []
    for m in minutes:
        per: Counter[str] = Counter()
        for key, n in m["counts"].items():
            if key[0] == "callback" and (provider is None or key[1] == provider):
                per[key[2]] += n
        out.append((m["minute"], per))
    return out


def _order(outcomes: Counter[str]) -> list[str]:
    named = [o for o in OUTCOMES if outcomes[o]]
    return named + sorted(o for o in outcomes if outcomes[o] and o not in OUTCOMES)


def callbacks_chart(minutes: Sequence[dict[str, Any]], provider: str | None = None, height: int = HEIGHT) -> Chart:
    """One stacked bar per minute; a title per bar and a legend with the hour's totals say the numbers."""
    stacks = per_minute(minutes, provider)
    hour: Counter[str] = Counter()
    for _, per in stacks:
        hour.update(per)
    whose = "every provider" if provider is None else provider
    top = max([sum(per.values()) for _, per in stacks] + [1])
    step = (WIDTH - LEFT) / max(len(stacks), 1)
    plot = height - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'data-provider="{escape(provider or "")}" '
        f'aria-label="callbacks per minute over the last hour by outcome, {escape(whose)}">',
        f'<text x="0" y="10" class="axis">{top}</text><text x="0" y="{plot}" class="axis">0</text>',
        f'<line x1="{LEFT}" y1="{plot}" x2="{WIDTH}" y2="{plot}" stroke="#d9dee5"/>',
    ]
    for i, (minute, per) in enumerate(stacks):
        x, y = LEFT + i * step, float(plot)
        label = datetime.fromtimestamp(minute * 60, timezone.utc).strftime("%H:%M")
        title = ", ".join(f"{per[o]} {o}" for o in _order(per)) or "none"
        parts.append(f"<g><title>{escape(label)} UTC: {escape(title)}</title>")
        parts.append(f'<rect x="{x:.1f}" y="0" width="{step:.1f}" height="{plot}" fill="transparent"/>')
        for outcome in _order(per):
            h = per[outcome] / top * (plot - 12)
            y -= h
            colour = OUTCOMES.get(outcome, (OTHER, ""))[0]
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{colour}" data-outcome="{escape(outcome)}"/>'
            )
        parts.append("</g>")
        if i % 10 == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 4}" class="axis">{label}</text>')
    parts.append("</svg>")
    return Chart(provider, Markup("".join(parts)) + legend(hour), sum(hour.values()))


def legend(hour: Counter[str]) -> Markup:
    """The outcomes of the hour, each with its colour, its meaning and its count."""
    if not hour:
        return Markup('<p class="legend muted">No callbacks in the last hour.</p>')
    keys = "".join(
        f'<span class="key" data-outcome="{escape(o)}">'
        f'<span class="swatch" style="background:{OUTCOMES.get(o, (OTHER, ""))[0]}"></span>'
        f'{escape(OUTCOMES.get(o, ("", o))[1])}: <span class="n">{hour[o]}</span></span>'
        for o in _order(hour)
    )
    return Markup(f'<p class="legend">{keys}</p>')
