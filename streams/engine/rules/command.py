"""`micromarketing rules check FILE`: validate a rules file and point at every problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streams.engine.rules.loader import check_file, load_rules


def run(args: argparse.Namespace) -> int:
    """Exit 0 and a summary if the file is fine, 1 with `FILE:LINE:COL: message` lines if not,
    2 if it cannot be read."""
    path = Path(args.file)
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "no such file"
        print(f"micromarketing rules check: {args.file}: {what}", file=sys.stderr)
        return 2
    try:
        issues, warnings = check_file(args.file)
    except OSError as err:
        print(
            f"micromarketing rules check: {args.file}: cannot read: {err.strerror or err}",
            file=sys.stderr,
        )
        return 2
    for warning in warnings:
        print(warning)
    if issues:
        for issue in issues:
            print(issue)
        return 1
    rules = load_rules(args.file)
    print(
        f"ok: {len(rules.segments)} segments, {len(rules.triggers)} triggers "
        f"(version {rules.version})"
    )
    return 0
