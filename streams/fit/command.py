"""`micromarketing fit EVENTS.jsonl --calibration-end DATE --out models.yaml`.

Reads the order history (a file, `-` for standard input, or a time range of the input topics),
fits BG/NBD (or the modified BG/NBD) and Gamma-Gamma by maximum likelihood, writes them as
models.yaml and prints a one-screen summary; with `--holdout-end`, also the calibration/holdout
check and its plot (models.holdout.html beside models.yaml).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from streams.engine.bgnbd import order_day
from streams.engine.clv import CustomerModels
from streams.engine.events import EventError, iso, parse_time
from streams.fit.history import History, read_history, summarize

MIN_REPEAT_BUYERS = 10


class FitCommandError(Exception):
    """Stops the command with a one-line message (exit code 2)."""


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except FitCommandError as exc:
        print(f"micromarketing fit: {exc}", file=sys.stderr)
        return 2


def _day(text: str, what: str) -> int:
    try:
        return order_day(parse_time(text, what))
    except EventError as exc:
        raise FitCommandError(f"{exc} (use a date such as 1997-09-30)") from None


def _run(args: argparse.Namespace) -> int:
    try:
        from streams.fit.mle import FitError, fit_bgnbd, fit_gamma_gamma
    except ImportError:
        raise FitCommandError(
            "fitting needs scipy: pip install 'micromarketing[fit]'"
        ) from None
    say = sys.stderr
    calibration_end = _day(args.calibration_end, "--calibration-end")
    holdout_end = _day(args.holdout_end, "--holdout-end") if args.holdout_end else None
    if holdout_end is not None and holdout_end <= calibration_end:
        raise FitCommandError("--holdout-end must be after --calibration-end")
    started = time.perf_counter()
    history = _read(args, say)
    days = history.days()
    customers = summarize(days, calibration_end, holdout_end)
    cal = iso(calibration_end * 86400.0)[:10]
    print(
        f"read {history.events} events ({history.bad} unreadable): {len(days)} consumers with "
        f"orders, {len(customers)} of them first ordered by {cal}",
        file=say,
    )
    repeat = sum(1 for c in customers if c.x > 0)
    if repeat < MIN_REPEAT_BUYERS:
        raise FitCommandError(
            f"only {repeat} of {len(customers)} customers ordered again on a later day by {cal}; "
            f"at least {MIN_REPEAT_BUYERS} repeat buyers are needed to fit the models"
        )
    modified = args.model == "mbgnbd"
    name = "modified BG/NBD" if modified else "BG/NBD"
    print(f"fitting {name} to {len(customers)} customers ...", file=say)
    try:
        bg = fit_bgnbd(customers, modified)
        print(f"fitting Gamma-Gamma to {repeat} repeat buyers ...", file=say)
        gg = fit_gamma_gamma(customers)
    except FitError as exc:
        raise FitCommandError(str(exc)) from None
    elapsed = time.perf_counter() - started
    out = Path(args.out)
    doc: dict[str, Any] = {
        "model": args.model,
        "calibration_end": cal,
        "time_unit": "weeks",
        "bgnbd": {**bg.params, "log_likelihood": bg.log_likelihood, "customers": bg.customers},
        "gamma_gamma": {**gg.params, "customers": gg.customers},
        "standard_errors": {"bgnbd": bg.errors, "gamma_gamma": gg.errors},
    }
    models = CustomerModels(
        (bg.params["r"], bg.params["alpha"], bg.params["a"], bg.params["b"]),
        (gg.params["p"], gg.params["q"], gg.params["v"]),
        modified,
    )
    lines = [
        f"{name}: " + _params(bg.params, bg.errors) + f"  (log-likelihood {bg.log_likelihood:.1f})",
        "Gamma-Gamma: " + _params(gg.params, gg.errors),
        f"customers {bg.customers}, repeat buyers {gg.customers}, fitted in {elapsed:.1f}s",
    ]
    if gg.params["q"] <= 1:
        lines.append("warning: Gamma-Gamma q <= 1: the population's mean order value is infinite")
    if holdout_end is not None:
        from streams.fit.check import holdout_check, plot_html, table

        weeks = (holdout_end - calibration_end) / 7
        buckets = holdout_check(customers, models, weeks)
        doc["holdout_end"] = iso(holdout_end * 86400.0)[:10]
        plot = out.with_name(out.stem + ".holdout.html")
        hold = iso(holdout_end * 86400.0)[:10]
        title = f"Calibration to {cal}, holdout to {hold}: repeat order days"
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_text(plot_html(buckets, title), encoding="utf-8")
        actual = sum(b.actual * b.customers for b in buckets)
        predicted = sum(b.predicted * b.customers for b in buckets)
        lines += [
            f"holdout {cal} .. {hold} ({weeks:.1f} weeks): {actual:.0f} repeat order days, "
            f"{predicted:.1f} predicted",
            table(buckets),
            f"plot: {plot}",
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_yaml(doc, name, len(customers)), encoding="utf-8")
    print("\n".join([*lines, f"wrote {out}"]))
    return 0


def _params(values: dict[str, float], errors: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g} (±{errors[k]:.2g})" for k, v in values.items())


def _yaml(doc: dict[str, Any], name: str, customers: int) -> str:
    head = (
        f"# {name} and Gamma-Gamma fitted by `micromarketing fit` to the orders of {customers}\n"
        "# customers (orders of one UTC day are one transaction; times in weeks). Use it with\n"
        "# `settings: {models: THIS_FILE}` in a rules file (a path relative to the rules file).\n"
    )
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def _read(args: argparse.Namespace, say: TextIO) -> History:
    if args.from_topics:
        if args.events:
            raise FitCommandError("fit takes EVENTS.jsonl or --from-topics, not both")
        return read_history(_progress(topic_values(args), args, say))
    if not args.events:
        raise FitCommandError("give an events file (JSON lines, '-' for stdin) or --from-topics")
    if args.events == "-":
        return read_history(_progress(sys.stdin.buffer, args, say))
    try:
        with open(args.events, "rb") as f:
            return read_history(_progress(f, args, say))
    except OSError as exc:
        raise FitCommandError(f"cannot read {args.events}: {exc.strerror}") from None


def _progress(values: Iterable[Any], args: argparse.Namespace, say: TextIO) -> Iterator[Any]:
    if args.no_progress or not say.isatty():
        yield from values
        return
    from tqdm import tqdm

    with tqdm(unit="ev", desc="reading", file=say) as bar:
        for value in values:
            bar.update(1)
            yield value


def topic_values(args: argparse.Namespace) -> Iterator[bytes | dict[str, Any]]:
    """The records of [--since, --until) of the input topics (the replay's reader)."""
    from confluent_kafka import KafkaException

    from connectors.sources.topics import TopicReplayError, read_range

    if not args.since or not args.until:
        raise FitCommandError("fit --from-topics needs both --since and --until (ISO-8601)")
    if not args.broker:
        raise FitCommandError("fit --from-topics needs --broker HOST:PORT")
    try:
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
        records, _ = read_range(args.broker, since, until)
        for record in records:
            yield record.value
    except (EventError, TopicReplayError) as exc:
        raise FitCommandError(str(exc)) from None
    except KafkaException as exc:
        raise FitCommandError(f"broker {args.broker}: {exc}") from None
