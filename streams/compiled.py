"""The engine modules that `make` compiles to C with mypyc, and the switch back to their source.

`setup.py` (with MICROMARKETING_COMPILE=1) builds each module below into a `.so` beside its
`.py`, and Python imports the `.so` first: the same code, about 2.5x faster (bench/replay.py).
The Python source runs instead when MICROMARKETING_PURE=1 is set, or when a source file is
newer than its compiled module (with a warning, so an edit is never silently ignored). It is
all or nothing: compiled modules call each other directly, not through their Python names.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PURE_ENV = "MICROMARKETING_PURE"
#: the name of mypyc's shared library (one per build), a top-level module
GROUP = "micromarketing_core"
MODULES = (
    "streams.engine.attribution",
    "streams.engine.bgnbd",
    "streams.engine.clv",
    "streams.engine.consumers",
    "streams.engine.core",
    "streams.engine.events",
    "streams.engine.features",
    "streams.engine.gammagamma",
    "streams.engine.jsonbytes",
    "streams.engine.namespace",
    "streams.engine.outputs",
    "streams.engine.partitioning",
    "streams.engine.population",
    "streams.engine.registry",
    "streams.engine.rules.expr",
    "streams.engine.rules.model",
    "streams.engine.rules.nodes",
    "streams.engine.rules.readers",
    "streams.engine.segments",
    "streams.engine.sketches",
    "streams.engine.state",
    "streams.engine.timeplan",
    "streams.engine.timers",
    "streams.engine.topics",
    "streams.engine.triggers",
    "streams.engine.undo",
    "streams.engine.view",
    "streams.runtime",
    # the worker's per-record path around the engine
    "streams.codec",
    "streams.contract",
    "streams.epochs",
    "streams.flow",
    "streams.measure.results",
    "streams.tables",
    # the worker's per-output-record hooks: metrics (streams.web.meter.Meter.observe) and the
    # campaign figures of its triggers and conversions (CampaignResults, fed per engine call)
    "streams.web.meter",
)


def source_of(module: str, root: Path = ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def binaries_of(module: str, root: Path = ROOT) -> list[Path]:
    """The compiled files of `module` present beside its source (for this interpreter)."""
    src = source_of(module, root)
    return [
        p
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if (p := src.with_name(src.stem + suffix)).exists()
    ]


def library(root: Path = ROOT) -> Path | None:
    """mypyc's shared library, which holds the compiled code of every module (the file beside
    each source only loads it, and is not rewritten when the code changes)."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if (p := root / f"{GROUP}__mypyc{suffix}").exists():
            return p
    return None


def stale(modules: Sequence[str] = MODULES, root: Path = ROOT) -> list[str]:
    """Modules whose source changed after the library was built (all of them: no library)."""
    lib = library(root)
    if lib is None:
        return list(modules)
    built = lib.stat().st_mtime
    return [m for m in modules if source_of(m, root).stat().st_mtime > built]


class SourceFinder(importlib.abc.MetaPathFinder):
    """Imports the listed modules from their `.py` files, whatever else lies beside them."""

    def __init__(self, modules: Sequence[str], root: Path = ROOT) -> None:
        self.modules = frozenset(modules)
        self.root = root

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(fullname, self.root))


_mode = "source"


def select() -> str:
    """Decide, before the first engine module is imported, whether the compiled modules or
    their source run; returns the mode ("compiled" or "source")."""
    global _mode
    if any(isinstance(f, SourceFinder) for f in sys.meta_path):
        return _mode
    present = [bool(binaries_of(m)) for m in MODULES]
    if not any(present):
        _mode = "source"  # not compiled: Python imports the .py files by itself
        return _mode
    if library() is not None and all(present) and os.environ.get(PURE_ENV, "") in ("", "0"):
        # only in a source checkout: an installed wheel's file times say nothing of edits
        changed = stale() if (ROOT / "setup.py").exists() else []
        if not changed:
            _load_library()
            _mode = "compiled"
            return _mode
        log.warning(
            "%s changed after the engine was compiled: running the Python source "
            "(run `make compile` to compile it again)",
            ", ".join(source_of(m).relative_to(ROOT).as_posix() for m in changed[:3]),
        )
    # asked for, stale, or only partly compiled: every listed module from its .py file
    sys.meta_path.insert(0, SourceFinder(MODULES))
    _mode = "source"
    return _mode


def _load_library() -> None:
    """Import mypyc's library by its path: each compiled module imports it as a top-level
    module, which the source tree is not on `sys.path` for (an editable install's console
    script, say)."""
    name = f"{GROUP}__mypyc"
    lib = library()
    if name in sys.modules or lib is None:
        return
    spec = importlib.util.spec_from_file_location(name, lib)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def mode() -> str:
    """How the engine runs in this process: "compiled" (mypyc) or "source"."""
    return _mode
