"""What report.html adds to a replay: the replay loop over the bike-shop history with and
without the page, alternating, in this process (as `micromarketing replay` runs it).

    python bench/report.py [--events 200000] [--consumers 20000] [--repeat 3]

"with page" starts the page's child process first (it loads matplotlib while the replay runs),
feeds the timeline as outputs are written, and waits for report.html at the end. Wall times
move with the machine's load; CPU seconds (this process and the page's child together) much
less, so both are printed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.sources.synthetic import generate_events  # noqa: E402
from streams import compiled  # noqa: E402
from streams.engine.rules import load_rules  # noqa: E402
from streams.replay import OutputFiles, replay, write_report  # noqa: E402
from streams.report.writer import PageWriter  # noqa: E402
from streams.runtime import Runtime, tune_gc  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children so far."""
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_once(
    lines: list[bytes], rules_path: str, out: Path, page: bool
) -> tuple[float, float, float]:
    """(wall seconds of the whole replay, its CPU seconds, seconds spent waiting for the page
    at the end)."""
    started, cpu = time.perf_counter(), _cpu()
    writer = PageWriter(out) if page else None
    runtime = Runtime(load_rules(rules_path), 4)
    tune_gc()
    with OutputFiles(out, writer.timeline if writer else None) as files:
        report = replay((("bench", str(i), line) for i, line in enumerate(lines)), runtime, files)
    write_report(out, report)
    waited = 0.0
    if writer is not None:
        t = time.perf_counter()
        assert writer.finish(report), "report.html was not written"
        waited = time.perf_counter() - t
    return time.perf_counter() - started, _cpu() - cpu, waited


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--consumers", type=int, default=20_000)
    ap.add_argument("--rules", default=str(ROOT / "examples" / "bike-shop" / "rules.yaml"))
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    a = ap.parse_args()
    print(f"generating {a.events} events for {a.consumers} consumers ...", file=sys.stderr)
    lines = [orjson.dumps(e) for e in generate_events(a.consumers, a.events, seed=11)]
    with tempfile.TemporaryDirectory() as tmp:
        plain, paged = [], []
        for i in range(a.repeat):
            plain.append(run_once(lines, a.rules, Path(tmp) / f"plain{i}", False))
            paged.append(run_once(lines, a.rules, Path(tmp) / f"page{i}", True))
    wall_p, wall_h = min(r[0] for r in plain), min(r[0] for r in paged)
    cpu_p, cpu_h = min(r[1] for r in plain), min(r[1] for r in paged)
    print(f"engine               : {compiled.mode()}, {len(lines)} events, best of {a.repeat}")
    print(f"replay, --no-html    : {wall_p:6.2f} s wall, {cpu_p:6.2f} s CPU")
    print(f"replay with the page : {wall_h:6.2f} s wall (+{wall_h / wall_p - 1:.1%}), "
          f"{cpu_h:6.2f} s CPU (+{cpu_h / cpu_p - 1:.1%}); waited for the page at the end "
          f"{min(r[2] for r in paged):.2f} s")


if __name__ == "__main__":
    main()
