"""`micromarketing compare A.yaml B.yaml EVENTS.jsonl --out DIR`: one history through two rule
sets, side by side.

Each rule set is replayed in this process exactly as `micromarketing replay` does (into DIR/a
and DIR/b, each with its own report.json and report.html); then DIR/compare.json and
DIR/compare.html put the two next to each other: segment sizes, triggers per campaign, the
consumers targeted (sent at least one non-holdout trigger) by one rule set and not the other,
suppressions, and the "would have bought anyway" rate (held-out conversion rate) per campaign.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from streams import replay
from streams.engine.events import EventError, parse_time
from streams.engine.rules import RulesError, load_rules
from streams.report.timeline import Timeline

SIDES = ("a", "b")
#: consumer ids listed per "targeted by one only" group in compare.json (the counts are exact)
MAX_IDS = 1000


class CompareError(Exception):
    """A bad argument, said in one line; `code` is the exit code (as `replay`'s: 1 for a rules
    file with an error, 2 for anything else)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace) -> int:
    """Entry point of `micromarketing compare`; the exit code."""
    try:
        _check(args)
    except CompareError as exc:
        print(f"micromarketing compare: {exc}", file=sys.stderr)
        return exc.code
    out = Path(args.out)
    for side, rules in zip(SIDES, (args.rules_a, args.rules_b), strict=True):
        code = replay.run(argparse.Namespace(
            events=args.events, rules=rules, out=str(out / side), partitions=args.partitions,
            close_at=args.close_at, no_progress=args.no_progress, no_html=args.no_html,
        ))
        if code:
            return code
    labels = (f"A: {Path(args.rules_a).name}", f"B: {Path(args.rules_b).name}")
    result = compare(out / "a", out / "b", labels)
    result["rules"] = {"a": args.rules_a, "b": args.rules_b}
    result["events"] = args.events
    (out / "compare.json").write_bytes(
        orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    from streams.report import compare_page  # matplotlib: only once there is a page to draw

    compare_page.write_page(out, result, Timeline.from_dir(out / "a"),
                            Timeline.from_dir(out / "b"), max_ids=MAX_IDS)
    t = result["targeted"]
    print(
        f"compared {labels[0]} and {labels[1]}: {t['a']} and {t['b']} consumers targeted, "
        f"{t['a_only']} by A only, {t['b_only']} by B only -> {out / 'compare.html'}",
        file=sys.stderr,
    )
    return 0


def _check(args: argparse.Namespace) -> None:
    if args.events == "-":
        raise CompareError("EVENTS must be a file (it is read twice), not stdin")
    if not Path(args.events).is_file():
        raise CompareError(f"no such file: {args.events}")
    for rules in (args.rules_a, args.rules_b):
        try:
            load_rules(rules)
        except RulesError as exc:
            raise CompareError(str(exc), code=1) from None
        except OSError as exc:
            raise CompareError(f"cannot read rules {rules}: {exc.strerror or exc}") from None
    if args.close_at:
        try:
            parse_time(args.close_at, "--close-at")
        except EventError as exc:
            raise CompareError(str(exc)) from None
    if args.partitions is not None and args.partitions < 1:
        raise CompareError(f"--partitions must be at least 1, got {args.partitions}")


def compare(a_dir: Path, b_dir: Path, labels: tuple[str, str]) -> dict[str, Any]:
    """The side-by-side figures of two replays' output directories."""
    reports = [orjson.loads((d / "report.json").read_bytes()) for d in (a_dir, b_dir)]
    timelines = [Timeline.from_dir(d) for d in (a_dir, b_dir)]
    targeted = [_targeted(d / "triggers.jsonl") for d in (a_dir, b_dir)]
    return {
        "labels": {"a": labels[0], "b": labels[1]},
        "segments": _segments(reports, timelines),
        "triggers": _by_campaign(reports),
        "suppressed": _pair(reports, "suppressed"),
        "targeted": _overlap(targeted),
        "campaigns": _campaigns(reports),
    }


def _targeted(path: Path) -> dict[str, set[str]]:
    """{campaign: consumers sent (not held out) at least one of its triggers}."""
    out: dict[str, set[str]] = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                t = orjson.loads(line)
                if not t.get("holdout"):
                    out.setdefault(str(t["campaign"]), set()).add(str(t["consumer_id"]))
    return out


def _overlap(sides: Sequence[dict[str, set[str]]]) -> dict[str, Any]:
    def counts(a: set[str], b: set[str], ids: bool) -> dict[str, Any]:
        row: dict[str, Any] = {"a": len(a), "b": len(b), "both": len(a & b),
                               "a_only": len(a - b), "b_only": len(b - a)}
        if ids:
            row["a_only_ids"] = sorted(a - b)[:MAX_IDS]
            row["b_only_ids"] = sorted(b - a)[:MAX_IDS]
        return row

    a_all = set().union(*sides[0].values())
    b_all = set().union(*sides[1].values())
    result = counts(a_all, b_all, ids=True)
    result["by_campaign"] = {
        c: counts(sides[0].get(c, set()), sides[1].get(c, set()), ids=False)
        for c in sorted(set(sides[0]) | set(sides[1]))
    }
    return result


def _segments(reports: Sequence[Mapping[str, Any]],
              timelines: Sequence[Timeline]) -> dict[str, dict[str, Any]]:
    sizes = [t.segment_sizes() for t in timelines]
    names = sorted(set(sizes[0]) | set(sizes[1])
                   | set(reports[0].get("segments_entered", {}))
                   | set(reports[1].get("segments_entered", {})))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        row: dict[str, Any] = {}
        for side, report, series in zip(SIDES, reports, sizes, strict=True):
            s = series.get(name, [])
            row[f"entered_{side}"] = report.get("segments_entered", {}).get(name, 0)
            row[f"final_size_{side}"] = s[-1] if s else 0
            row[f"peak_size_{side}"] = max(s, default=0)
        out[name] = row
    return out


def _pair(reports: Sequence[Mapping[str, Any]], key: str) -> dict[str, dict[str, int]]:
    a, b = (r.get(key) or {} for r in reports)
    return {k: {"a": a.get(k, 0), "b": b.get(k, 0)} for k in sorted(set(a) | set(b))}


def _by_campaign(reports: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    treated, held = _pair(reports, "triggers"), _pair(reports, "holdout")
    none = {"a": 0, "b": 0}
    return {
        c: {"treated_a": treated.get(c, none)["a"], "treated_b": treated.get(c, none)["b"],
            "holdout_a": held.get(c, none)["a"], "holdout_b": held.get(c, none)["b"]}
        for c in sorted(set(treated) | set(held))
    }


CAMPAIGN_KEYS = ("treated", "holdout", "conversion_rate_treated", "conversion_rate_holdout",
                 "lift", "lift_ci95", "incremental_revenue")


def _campaigns(reports: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]] | None:
    """Per campaign each side's results (`conversion_rate_holdout` is the would-have-bought-
    anyway rate); None when neither report has campaign results."""
    found = [r.get("campaigns") for r in reports]
    if not any(isinstance(c, dict) for c in found):
        return None
    sides = [c if isinstance(c, dict) else {} for c in found]
    return {
        name: {side: ({k: s[name].get(k) for k in CAMPAIGN_KEYS} if name in s else None)
               for side, s in zip(SIDES, sides, strict=True)}
        for name in sorted(set(sides[0]) | set(sides[1]))
    }
