"""`micromarketing demo`: broker, a worker, the collector, the console and a synthetic shop, live.

`args` defines the command's options, `stack` starts and stops the processes and removes the
temporary folder, `board` is what the terminal shows, `results` the live campaign results, and
`run` the loop that ties the shop to the topics.
"""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Run the demo (see `micromarketing.demo.run`)."""
    from micromarketing.demo.run import run as _run

    return _run(args)
