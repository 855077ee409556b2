"""Small charts drawn on the server as inline SVG (no script, no front-end build, allowed by the CSP).

``delivery_chart`` draws one system's last hour: a bar per bucket for the deliveries and a line for
their 95th-percentile latency, each on its own scale (counts on the left, latency on the right).
Colours come from the stylesheet (classes ``bar``, ``latency``, ``axis``); every bar has a tooltip
(``<title>``) and the chart a text summary (``<title>``/``<desc>``) for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 360, 150
LEFT, RIGHT, TOP, BOTTOM = 34, 52, 12, 24
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
BAR_FILL = 0.8  # of a bucket's width; the rest is the gap


@dataclass(frozen=True)
class ChartBucket:
    start: datetime
    deliveries: int
    latency_s: float | None  # None: nothing delivered in the bucket


# Units of time, smallest first: their names and lengths in seconds.
TIME_UNITS: tuple[tuple[str, int], ...] = (("s", 1), ("min", 60), ("h", 3600), ("d", 86400))


def unit_index(seconds: float, units: Sequence[tuple[str, int]]) -> int:
    """The index of the unit to show ``seconds`` in: the largest of ``units`` (smallest first) it reaches."""
    return next((i for i, (_, length) in enumerate(units[1:]) if seconds < length), len(units) - 1)


def duration(seconds: float) -> str:
    """A latency in the unit an operator reads at a glance (milliseconds to hours)."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    unit, length = TIME_UNITS[unit_index(seconds, TIME_UNITS[:3])]
    return f"{seconds / length:.1f} {unit}"


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


def _ceiling(value: float) -> float:
    """A round number at least ``value`` for the top of an axis (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1.0, 2.0, 5.0, 10.0) if step * power >= value)


def delivery_chart(buckets: Sequence[ChartBucket], bucket_s: int, *, chart_id: str, label: str) -> Markup:
    """One system's deliveries (bars) and p95 latency (line) per bucket, oldest bucket on the left."""
    n = max(len(buckets), 1)
    slot = PLOT_W / n
    total = sum(b.deliveries for b in buckets)
    top_count = _ceiling(max((b.deliveries for b in buckets), default=0))
    latencies = [b.latency_s for b in buckets if b.latency_s is not None]
    top_latency = _ceiling(max(latencies, default=0.0))
    base_y = TOP + PLOT_H
    minutes = round(len(buckets) * bucket_s / 60)

    parts: list[str] = []
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    summary = (
        f"{total} deliveries in the last {minutes} min"
        + (f"; highest p95 latency {duration(max(latencies))}" if latencies else "")
        + f"; {len(buckets)} bars of {_num(bucket_s / 60)} min."
    )
    parts.append(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-labelledby="{escape(title_id)} {escape(desc_id)}">'
    )
    parts.append(f'<title id="{escape(title_id)}">{escape(label)}</title>')
    parts.append(f'<desc id="{escape(desc_id)}">{escape(summary)}</desc>')

    # Axes and their labels: counts on the left, latency on the right, time along the bottom.
    right_x = LEFT + PLOT_W
    parts.append(f'<path class="axis" d="M{LEFT} {TOP} V{base_y} H{right_x} V{TOP}"/>')
    parts.append(f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{_num(top_count)}</text>')
    parts.append(f'<text class="tick" x="{LEFT - 4}" y="{base_y}" text-anchor="end">0</text>')
    if latencies:
        parts.append(
            f'<text class="tick latency-tick" x="{right_x + 4}" y="{TOP + 4}">{escape(duration(top_latency))}</text>'
        )
    if buckets:
        start, end = buckets[0].start, buckets[-1].start + timedelta(seconds=bucket_s)
        parts.append(f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{_clock(start)}</text>')
        parts.append(f'<text class="tick" x="{right_x}" y="{HEIGHT - 6}" text-anchor="end">{_clock(end)} UTC</text>')
    if total == 0:
        parts.append(
            f'<text class="empty" x="{LEFT + PLOT_W / 2:.1f}" y="{TOP + PLOT_H / 2:.1f}" '
            'text-anchor="middle">no deliveries</text>'
        )

    # One bar per bucket that delivered something, each with its numbers as a tooltip.
    for i, bucket in enumerate(buckets):
        if bucket.deliveries == 0:
            continue
        height = bucket.deliveries / top_count * PLOT_H
        x = LEFT + i * slot + slot * (1 - BAR_FILL) / 2
        noun = "delivery" if bucket.deliveries == 1 else "deliveries"
        end = bucket.start + timedelta(seconds=bucket_s)
        tip = f"{_clock(bucket.start)} to {_clock(end)} UTC: {bucket.deliveries} {noun}"
        if bucket.latency_s is not None:
            tip += f", p95 latency {duration(bucket.latency_s)}"
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{base_y - height:.1f}" width="{slot * BAR_FILL:.1f}" '
            f'height="{height:.1f}"><title>{escape(tip)}</title></rect>'
        )

    # The latency line, broken where a bucket delivered nothing; a dot on every point.
    segments: list[list[tuple[float, float]]] = [[]]
    for i, bucket in enumerate(buckets):
        if bucket.latency_s is None:
            if segments[-1]:
                segments.append([])
            continue
        x = LEFT + (i + 0.5) * slot
        y = base_y - bucket.latency_s / top_latency * PLOT_H
        segments[-1].append((x, y))
    for segment in segments:
        if len(segment) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
            parts.append(f'<polyline class="latency" points="{points}"/>')
        for x, y in segment:
            parts.append(f'<circle class="latency-dot" cx="{x:.1f}" cy="{y:.1f}" r="2"/>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped, every number formatted
