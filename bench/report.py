"""What report.html adds to a replay: the replay loop over the bike-shop history with and
without the page, alternating, in this process (as `micromarketing replay` runs it).

    python bench/report.py [--events 200000] [--consumers 20000] [--repeat 3]

"with page" starts the page's child process first (it loads matplotlib while the replay runs),
feeds the timeline as outputs are written, and waits for report.html; "finish" is that wait.
"in process" draws the same page in this process, import included, for comparison.
"""

from __future__ import annotations

import argparse
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


def run_once(lines: list[bytes], rules_path: str, out: Path, page: bool) -> tuple[float, float]:
    """(wall seconds of the whole replay, seconds spent waiting for the page at the end)."""
    started = time.perf_counter()
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
    return time.perf_counter() - started, waited


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
        plain, paged, waits = [], [], []
        for i in range(a.repeat):
            plain.append(run_once(lines, a.rules, Path(tmp) / f"plain{i}", False)[0])
            total, waited = run_once(lines, a.rules, Path(tmp) / f"page{i}", True)
            paged.append(total)
            waits.append(waited)
        out = Path(tmp) / f"page{a.repeat - 1}"
        t = time.perf_counter()
        from streams.report import html
        from streams.report.timeline import Timeline

        html.write_report(out, orjson.loads((out / "report.json").read_bytes()),
                          Timeline.from_dir(out))
        in_process = time.perf_counter() - t
    best_plain, best_paged = min(plain), min(paged)
    print(f"engine               : {compiled.mode()}, {len(lines)} events, best of {a.repeat}")
    print(f"replay, --no-html    : {best_plain:6.2f} s")
    print(f"replay with the page : {best_paged:6.2f} s  (+{best_paged / best_plain - 1:.1%}; "
          f"waiting for the page at the end: {min(waits):.2f} s)")
    print(f"page in process      : {in_process:6.2f} s  (matplotlib import included)")


if __name__ == "__main__":
    main()
