"""Build hook: with MICROMARKETING_COMPILE=1, the engine modules listed in streams/compiled.py
are compiled with mypyc (`make compile` does it in place); otherwise a plain Python package.
The package's metadata is in pyproject.toml."""

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext


class StampedBuildExt(build_ext):
    """build_ext that gives every compiled module the time of this build, even one whose C code
    did not change (not rebuilt), so that streams/compiled.py can tell a source file edited
    after the build from one compiled by it."""

    def run(self) -> None:
        super().run()
        for ext in self.extensions:
            for path in {self.get_ext_fullpath(ext.name), *self.get_outputs()}:
                if os.path.exists(path):
                    os.utime(path)


ext_modules: list[Any] = []
if os.environ.get("MICROMARKETING_COMPILE") == "1":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mypyc.build import mypycify

    from streams.compiled import GROUP, MODULES

    ext_modules = mypycify(
        [m.replace(".", "/") + ".py" for m in MODULES], group_name=GROUP, opt_level="3"
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": StampedBuildExt})
