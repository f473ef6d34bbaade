"""The process that draws report.html beside a replay (`streams.report.writer` starts it):
`streams.report.html.main`, made cheaper for a process that lives for one page.

    python -m streams.report.child OUT_DIR
"""

from __future__ import annotations

import gc
import os
import sys

# before matplotlib loads: the collector's passes over its many new objects cost a few % of
# this process's CPU, and it lives for one page, so nothing needs collecting
gc.disable()

from streams.report import lean_import  # noqa: E402

lean_import.install()  # before matplotlib loads

from streams.report.html import main  # noqa: E402

if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # the page is written and closed: skip tearing matplotlib's modules down (as long as the
    # drawing that is left at the end, which the replay would wait for)
    os._exit(code)
