"""The options of `micromarketing demo`."""

from __future__ import annotations

import argparse

#: Persuasion probability of a delivered offer, per campaign of the bike-shop rules (the shop's
#: closed loop: connectors/sources/open_shop.py). browse-abandonment is the A/A campaign: its
#: offers change nothing, so its measured lift should be 0 within its confidence interval.
DEFAULT_UPLIFT: dict[str, float] = {
    "cart-abandonment": 0.10,
    "browse-abandonment": 0.0,
    "winback-60d": 0.05,
    "lapsed-loyal": 0.10,
}
#: Simulated days per real second by default.
DEFAULT_SPEED = 2.0


def uplift_arg(text: str) -> tuple[str, float]:
    """`CAMPAIGN=POINTS` (points of persuasion, 0..100) as (campaign, probability)."""
    name, sep, value = text.partition("=")
    try:
        points = float(value)
    except ValueError:
        points = -1.0
    if not sep or not name or not 0.0 <= points <= 100.0:
        raise argparse.ArgumentTypeError(f"expected CAMPAIGN=POINTS (0..100), got {text!r}")
    return name, points / 100.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the demo's options to its subcommand parser."""
    p.add_argument("--rules", default=None, help="rules file (default: the bike shop's)")
    p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    p.add_argument(
        "--follow",
        action="store_true",
        help="print the stream of segment changes, triggers and conversions instead of the table",
    )
    p.add_argument(
        "--shoppers", type=int, default=250, help="active shoppers in the shop (default 250)"
    )
    p.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help=f"simulated days per real second (default {DEFAULT_SPEED:g})",
    )
    p.add_argument("--seed", type=int, default=None, help="the shop's random seed")
    defaults = ", ".join(f"{k}={v * 100:g}" for k, v in DEFAULT_UPLIFT.items())
    p.add_argument(
        "--uplift",
        type=uplift_arg,
        action="append",
        default=[],
        metavar="CAMPAIGN=POINTS",
        help="share of treated shoppers (in points) a campaign's offer persuades to buy within "
        f"its attribution window; repeatable (defaults: {defaults})",
    )
    p.add_argument(
        "--every",
        type=float,
        default=None,
        help="seconds between table refreshes (default 1 on a terminal, 10 otherwise)",
    )
    p.add_argument(
        "--rate-window",
        type=float,
        default=60.0,
        help="seconds per window of the event rates in the final summary (default 60)",
    )
    p.add_argument(
        "--broker",
        metavar="HOST:PORT",
        default=None,
        help="Kafka bootstrap server; without it, the embedded broker",
    )
