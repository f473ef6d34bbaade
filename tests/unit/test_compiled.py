"""The switch between the mypyc-compiled engine modules and their Python source."""

from __future__ import annotations

import gc
import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams import compiled

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _module(root: Path, name: str, mtime: float, binary: bool = True) -> None:
    src = compiled.source_of(name, root)
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text("VALUE = 'source'\n")
    os.utime(src, (mtime, mtime))
    if binary:  # the loader stub, whose time says nothing (it is not rebuilt when code changes)
        src.with_name(src.stem + SUFFIX).write_bytes(b"stub")


def test_sources_changed_after_the_library_was_built_are_stale(tmp_path):
    _module(tmp_path, "pkg.fresh", 1000)
    _module(tmp_path, "pkg.edited", 3000)
    _module(tmp_path, "pkg.plain", 1000, binary=False)
    names = ["pkg.fresh", "pkg.edited", "pkg.plain"]
    assert compiled.stale(names, tmp_path) == names  # no library: nothing is compiled
    lib = tmp_path / f"{compiled.GROUP}__mypyc{SUFFIX}"
    lib.write_bytes(b"not really a shared library")
    os.utime(lib, (2000, 2000))
    assert compiled.library(tmp_path) == lib
    assert compiled.stale(names, tmp_path) == ["pkg.edited"]
    assert [bool(compiled.binaries_of(n, tmp_path)) for n in names] == [True, True, False]


def test_the_source_finder_imports_the_py_file_beside_a_binary(tmp_path):
    _module(tmp_path, "mmpkg.mod", 1000)
    (tmp_path / "mmpkg" / "__init__.py").write_text("")
    finder = compiled.SourceFinder(["mmpkg.mod"], tmp_path)
    spec = finder.find_spec("mmpkg.mod", None)
    assert spec is not None and spec.origin == str(tmp_path / "mmpkg" / "mod.py")
    assert finder.find_spec("mmpkg.other", None) is None
    sys.path.insert(0, str(tmp_path))
    sys.meta_path.insert(0, finder)
    try:
        import mmpkg.mod

        assert mmpkg.mod.VALUE == "source"
    finally:
        sys.meta_path.remove(finder)
        sys.path.remove(str(tmp_path))
        for name in ("mmpkg.mod", "mmpkg"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("pure", ["1", ""])
def test_the_mode_and_the_files_imported_agree(pure):
    """MICROMARKETING_PURE=1 runs every listed module from source; otherwise the mode says
    which kind of file each of them was imported from."""
    code = (
        "import importlib, streams.compiled as c\n"
        "files = {importlib.import_module(m).__file__.endswith('.py') for m in c.MODULES}\n"
        "print(c.mode(), sorted(files))\n"
    )
    env = {**os.environ, compiled.PURE_ENV: pure}
    res = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=compiled.ROOT,
    )
    mode, files = res.stdout.split(" ", 1)
    assert files.strip() == ("[True]" if mode == "source" else "[False]")
    if pure:
        assert mode == "source"
    elif os.environ.get("MICROMARKETING_EXPECT_COMPILED") == "1":  # set by `make test`
        assert mode == "compiled", res.stderr


def test_compiled_states_timers_and_index_entries_are_not_tracked_by_the_cyclic_gc():
    """Tens of thousands of each are alive in a worker, and none can be part of a cycle: the
    collector has nothing to find in them (`mypyc_attr(acyclic=True)`)."""
    from streams.engine.state import ConsumerState, Timer
    from streams.engine.timers import Entry

    if compiled.mode() != "compiled":
        pytest.skip("from source, instances of Python classes are always tracked")
    made = [ConsumerState("c", 0.0), Timer(1.0, 0.0, "a", ["p"]), Entry(1.0, "c", "t")]
    assert [gc.is_tracked(o) for o in made] == [False, False, False]
