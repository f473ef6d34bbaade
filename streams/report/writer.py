"""report.html beside a replay, drawn by a child process that loads the plotting library while
the replay runs.

Loading matplotlib takes longer than drawing the whole page; started with the replay, the child
has it loaded by the end. The replay feeds `timeline` as it writes its outputs; once the last
output is written, `outputs_done()` hands the timeline's counters to the child, which draws its
plots while the replay writes profiles.jsonl and report.json; `finish(report)` then hands over
the report (the campaign results and the page around the plots are all that is left to draw)
and waits for the file. Where no child can be started the page is drawn in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from streams.report.timeline import Timeline

ROOT = Path(__file__).resolve().parents[2]  # where the `streams` package lives
TIMEOUT = 600.0


def child_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: the parent's, with this tree first on PYTHONPATH."""
    env = dict(parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    # NumPy's OpenBLAS would start a thread per core that spins while idle: CPU for nothing in a
    # process that multiplies a few 3x3 matrices
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


class PageWriter:
    """Starts the child at once; `finish` writes `out_dir/report.html`, `cancel` gives up."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.timeline = Timeline()
        env = child_environment(os.environ)
        self._child: subprocess.Popen[bytes] | None
        self._sent = False
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "streams.report.child", str(out_dir)],
                stdin=subprocess.PIPE, env=env,
            )
        except OSError:
            self._child = None

    def outputs_done(self) -> None:
        """Hand the timeline to the child, which draws its plots at once (feed nothing more)."""
        if self._child is None or self._sent or self._child.returncode is not None:
            return
        self._sent = True
        assert self._child.stdin is not None
        try:
            self._child.stdin.write(orjson.dumps({"timeline": self.timeline.to_state()}) + b"\n")
            self._child.stdin.flush()
        except (OSError, ValueError):
            pass  # the child is gone: `finish` says so

    def finish(self, report: dict[str, Any]) -> bool:
        """Write report.html; False (after saying why on stderr) when it could not be."""
        if self._child is None:
            from streams.report import html

            html.write_report(self.out_dir, report, self.timeline)
            return True
        self.outputs_done()
        if self._child.returncode is None:  # not cancelled
            try:
                self._child.communicate(orjson.dumps({"report": report}) + b"\n",
                                        timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.cancel()
        if self._child.returncode != 0:
            print(
                f"micromarketing replay: {self.out_dir / 'report.html'} was not written (see "
                "above); --no-html skips it",
                file=sys.stderr,
            )
            return False
        return True

    def cancel(self) -> None:
        """Stop the child without a page (the replay failed)."""
        if self._child is not None and self._child.returncode is None:
            self._child.kill()
            self._child.communicate()
