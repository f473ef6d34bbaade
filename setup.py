"""Build hook: with MICROMARKETING_COMPILE=1, the engine modules listed in streams/compiled.py
are compiled with mypyc (`make compile` does it in place); otherwise a plain Python package.
The package's metadata is in pyproject.toml."""

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup

ext_modules: list[Any] = []
if os.environ.get("MICROMARKETING_COMPILE") == "1":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mypyc.build import mypycify

    from streams.compiled import GROUP, MODULES

    ext_modules = mypycify(
        [m.replace(".", "/") + ".py" for m in MODULES], group_name=GROUP, opt_level="3"
    )

setup(ext_modules=ext_modules)
