"""What the replay benchmarks share: the synthetic bike-shop history they replay.

    from common import history, history_arguments   # bench/ is on sys.path when run as a script
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sources.synthetic import generate_events  # noqa: E402

RULES = ROOT / "examples" / "bike-shop" / "rules.yaml"
SEED = 11


def history_arguments(ap: argparse.ArgumentParser) -> None:
    """--events, --consumers and --rules, with the defaults every replay figure is quoted at."""
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--consumers", type=int, default=20_000)
    ap.add_argument("--rules", default=str(RULES))


def history(events: int, consumers: int) -> list[bytes]:
    """The bike-shop history as JSON lines (`connectors.sources.synthetic`, a fixed seed)."""
    print(f"generating {events} events for {consumers} consumers ...", file=sys.stderr)
    return [orjson.dumps(e) for e in generate_events(consumers, events, seed=SEED)]
