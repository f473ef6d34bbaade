"""What report.html adds to a replay: the replay loop over the bike-shop history with and
without the page, in pairs, in this process (as `micromarketing replay` runs it).

    python bench/report.py [--events 200000] [--consumers 20000] [--pairs 5]

"with page" starts the page's child process first (it loads matplotlib while the replay runs),
feeds the timeline as outputs are written, hands it to the child once the last output is
written (its plots are drawn while profiles.jsonl is written) and waits for report.html at the
end. The two runs of a pair alternate in order (plain first, then page first, ...) so a drift in
the machine's load favours neither; the cost is the median over the pairs. Wall times move with
the load; CPU seconds (this process and the page's child together) much less, so both are
printed, and the child's share of the CPU.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import history, history_arguments

from streams import compiled
from streams.engine.rules import load_rules
from streams.replay import OutputFiles, replay, write_report
from streams.report.writer import PageWriter
from streams.runtime import Runtime, tune_gc


@dataclass
class Run:
    wall: float  # seconds of the whole replay, report.json and report.html included
    cpu: float  # CPU seconds of this process and the page's child
    child_cpu: float  # CPU seconds of the page's child alone
    waited: float  # seconds waited for the page at the end


def _cpu() -> tuple[float, float]:
    """CPU seconds so far of this process, and of its waited-for children."""
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def run_once(lines: list[bytes], rules_path: str, out: Path, page: bool) -> Run:
    started, (own, children) = time.perf_counter(), _cpu()
    writer = PageWriter(out) if page else None
    runtime = Runtime(load_rules(rules_path), 4)
    tune_gc()
    with OutputFiles(out, writer.timeline if writer else None,
                     writer.outputs_done if writer else None) as files:
        report = replay((("bench", str(i), line) for i, line in enumerate(lines)), runtime, files)
    write_report(out, report)
    waited = 0.0
    if writer is not None:
        t = time.perf_counter()
        assert writer.finish(report), "report.html was not written"
        waited = time.perf_counter() - t
    wall = time.perf_counter() - started
    own_now, children_now = _cpu()
    child = children_now - children
    return Run(wall, own_now - own + child, child, waited)


def _median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(r, field) for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    history_arguments(ap)
    ap.add_argument("--pairs", "--repeat", type=int, default=5,
                    help="pairs of runs (with and without the page); medians count")
    a = ap.parse_args()
    lines = history(a.events, a.consumers)
    plain: list[Run] = []
    paged: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.pairs):
            for page in (False, True) if i % 2 == 0 else (True, False):
                run = run_once(lines, a.rules, Path(tmp) / f"{'page' if page else 'plain'}{i}",
                               page)
                (paged if page else plain).append(run)
    wall_ratios = sorted(p.wall / q.wall - 1 for p, q in zip(paged, plain, strict=True))
    cpu_ratios = sorted(p.cpu / q.cpu - 1 for p, q in zip(paged, plain, strict=True))
    wall_p, wall_h = _median(plain, "wall"), _median(paged, "wall")
    cpu_p, cpu_h = _median(plain, "cpu"), _median(paged, "cpu")
    child = _median(paged, "child_cpu")
    print(f"engine               : {compiled.mode()}, {len(lines)} events, medians of {a.pairs} "
          "alternating pairs")
    print(f"replay, --no-html    : {wall_p:6.2f} s wall, {cpu_p:6.2f} s CPU")
    print(f"replay with the page : {wall_h:6.2f} s wall, {cpu_h:6.2f} s CPU")
    print(f"what the page adds   : wall {wall_h / wall_p - 1:+.1%}, CPU {cpu_h / cpu_p - 1:+.1%} "
          f"(ratio of medians); per pair, median wall {statistics.median(wall_ratios):+.1%} "
          f"[{', '.join(f'{r:+.0%}' for r in wall_ratios)}], CPU "
          f"{statistics.median(cpu_ratios):+.1%} [{', '.join(f'{r:+.0%}' for r in cpu_ratios)}]")
    print(f"of which             : the page's child {child:.2f} s CPU "
          f"({child / cpu_p:.1%} of the replay's), the replay process "
          f"{(cpu_h - child) / cpu_p - 1:+.1%}; waited for the page at the end "
          f"{_median(paged, 'waited'):.2f} s (median)")


if __name__ == "__main__":
    main()
