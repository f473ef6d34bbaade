"""Run one slow setup step of `make` and say what it is doing, with the elapsed time.

    python3 tools/step.py "installing the project into .venv" -- CMD [ARGS...]

The command's own output goes to a log file (`--log FILE`, default: shown only on failure);
on a terminal the status line is rewritten every second, otherwise a line every 15 s.
Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", help="what the step does, for the user")
    ap.add_argument("--log", default=None, help="where the command's output goes")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command given after --")
    log = open(a.log, "w+b") if a.log else tempfile.TemporaryFile()  # noqa: SIM115
    tty = sys.stdout.isatty()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    every = 1.0 if tty else 15.0
    print(f"[{_clock(0)}] {a.what} ...", flush=True)
    while True:
        try:
            code = proc.wait(every)
            break
        except subprocess.TimeoutExpired:
            line = f"[{_clock(time.monotonic() - start)}] {a.what} ..."
            print(("\033[1F" + line + "\033[K") if tty else line, flush=True)
    took = _clock(time.monotonic() - start)
    if code == 0:
        print(f"[{took}] {a.what}: done", flush=True)
    else:
        log.seek(0)
        tail = log.read().decode(errors="replace").splitlines()[-20:]
        print("\n".join(tail), file=sys.stderr)
        print(f"[{took}] {a.what}: failed (exit {code})", file=sys.stderr, flush=True)
    log.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
