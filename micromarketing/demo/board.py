"""What the demo's terminal shows: a compact table refreshed in place, or the event stream.

On a terminal the table is redrawn in place (ANSI: cursor up, clear line); otherwise (a pipe, a
log file) it is printed as a block every few seconds. `--follow` prints one line per segment
change, trigger, suppression and conversion instead, in shop-time order within each read.
"""

from __future__ import annotations

import shutil
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from micromarketing.demo.results import CONVERSIONS, lift_text, points
from streams.contract import SEGMENT_CHANGES, SUPPRESSED, TRIGGER_TOPICS

LEGEND = (
    "legend: trig/min = last real minute | sent/held = treated/holdout (not sent) | "
    "conv = ordered within the window | lift = points [95% CI] | planted = the shop's uplift"
)
FOLLOW_LEGEND = (
    "legend: + entered / - exited a segment | ⚡ trigger (holdout: not sent) | "
    "suppressed (reason) | $ conversion: an order within a trigger's attribution window"
)


class Style:
    """ANSI colors, only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text


def shop_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M") if t else "-"


class Tally:
    """Counts kept from the output records: segment sizes, triggers, suppressions, lag."""

    def __init__(self) -> None:
        self.sizes: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.conversions = 0
        self.recent: deque[tuple[float, str]] = deque()  # (real time, campaign) of triggers
        #: real seconds between a trigger's due time and the moment it is read here
        self.lags: deque[float] = deque(maxlen=200)

    def add(self, base: str, rec: Mapping[str, Any], now: float) -> None:
        if base == SEGMENT_CHANGES:
            seg = str(rec.get("segment"))
            self.sizes[seg] += 1 if rec.get("change") == "entered" else -1
        elif base in TRIGGER_TOPICS:
            campaign = str(rec.get("campaign"))
            (self.held if rec.get("holdout") else self.sent)[campaign] += 1
            self.recent.append((now, campaign))
        elif base == SUPPRESSED:
            self.suppressed[str(rec.get("reason"))] += 1
        elif base == CONVERSIONS:
            self.conversions += 1

    def per_minute(self, now: float) -> Counter[str]:
        while self.recent and self.recent[0][0] < now - 60.0:
            self.recent.popleft()
        return Counter(c for _, c in self.recent)

    def lag(self) -> float | None:
        return sorted(self.lags)[len(self.lags) // 2] if self.lags else None


def table(
    tally: Tally,
    header: str,
    now: float,
    results: dict[str, dict[str, Any]] | None,
    planted: Mapping[str, float],
    results_note: str,
) -> list[str]:
    """The lines of the table."""
    lines = [header, ""]
    sizes = sorted(((n, s) for s, n in tally.sizes.items() if n > 0), key=lambda x: -x[0])
    cells = [f"{s[:20]:<20} {n:>5}" for n, s in sizes[:12]] or ["(no segment members yet)"]
    lines.append("segments (size)")
    for i in range(0, len(cells), 3):
        lines.append("  " + "   ".join(cells[i : i + 3]))
    lines.append("")
    rate = tally.per_minute(now)
    lines.append(
        f"{'campaign':<20} {'trig/min':>8} {'sent':>6} {'held':>5} "
        f"{'conv sent':>9} {'conv held':>9}  {'lift [95% CI]':<22} {'planted':>7}"
    )
    campaigns = sorted(set(tally.sent) | set(tally.held) | set(planted))
    for c in campaigns:
        row = (results or {}).get(c, {})
        conv = (
            f"{row.get('converted_treated', 0):>9} {row.get('converted_holdout', 0):>9}"
            if row
            else f"{'-':>9} {'-':>9}"
        )
        lines.append(
            f"{c[:20]:<20} {rate[c]:>8} {tally.sent[c]:>6} {tally.held[c]:>5} {conv}  "
            f"{lift_text(row) if row else '-':<22} {points(planted.get(c, 0.0)):>7}"
        )
    supp = ", ".join(f"{r} {n}" for r, n in tally.suppressed.most_common(4)) or "none"
    lines.append(f"suppressed: {supp}")
    if results_note:
        lines.append(results_note)
    lines.append(LEGEND)
    return lines


class Board:
    """Draws the table: in place on a terminal, as periodic blocks otherwise."""

    def __init__(self, out: IO[str], in_place: bool) -> None:
        self.out = out
        self.in_place = in_place
        self._drawn = 0

    def draw(self, lines: list[str]) -> None:
        if self.in_place:  # a wrapped line would break the cursor moves: cut at the width
            width = shutil.get_terminal_size().columns
            lines = [line[: width - 1] for line in lines]
        buf = []
        if self.in_place and self._drawn:
            buf.append(f"\033[{self._drawn}F")  # to the first line of the previous table
        for line in lines:
            buf.append(line + ("\033[K" if self.in_place else "") + "\n")
        if self.in_place and self._drawn > len(lines):
            buf.append("\033[J")  # clear what the longer previous table left below
        if not self.in_place:
            buf.append("\n")
        self.out.write("".join(buf))
        self.out.flush()
        self._drawn = len(lines)


class Follow:
    """One line per output record, sorted by shop time within each batch."""

    def __init__(self, out: IO[str], style: Style) -> None:
        self.out = out
        self.s = style
        self._batch: list[tuple[str, str]] = []

    def add(self, base: str, rec: Mapping[str, Any]) -> None:
        s = self.s
        at = str(rec.get("at") or rec.get("converted_at") or rec.get("fired_at") or "")[:16]
        who = str(rec.get("consumer_id", "?"))
        if base == SEGMENT_CHANGES:
            mark = s("+ entered", "32") if rec.get("change") == "entered" else s("- exited ", "33")
            line = f"{mark}  {s(str(rec.get('segment')), '1')}  {who}"
        elif base in TRIGGER_TOPICS:
            kind = str(rec.get("kind"))
            tail = s("  (holdout: not sent)", "2") if rec.get("holdout") else ""
            color = "1;35" if kind == "retargeting" else "1;36"
            line = (
                f"{s('⚡ ' + kind.upper(), color)}  {s(str(rec.get('campaign')), '1')} -> {who}"
                f"  offer={rec.get('offer')}{tail}"
            )
        elif base == SUPPRESSED:
            line = s(f"  suppressed  {rec.get('campaign')} -> {who}  ({rec.get('reason')})", "2")
        elif base == CONVERSIONS:
            held = " (holdout)" if rec.get("holdout") else ""
            line = s(
                f"$ converted  {rec.get('campaign')}{held} -> {who}  "
                f"order {rec.get('order_id')} {rec.get('revenue')}",
                "32",
            )
        else:
            return
        self._batch.append((at, f"{s(at, '2')}  {line}"))

    def flush(self) -> None:
        for _, line in sorted(self._batch, key=lambda x: x[0]):
            self.out.write(line + "\n")
        self._batch.clear()
        self.out.flush()
