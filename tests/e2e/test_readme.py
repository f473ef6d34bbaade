"""The README's shell examples run as written, and its links stay inside the repository.

Every fenced `sh` block of README.md is an example: it runs with bash (`-e -o pipefail`) in a
scratch folder that has the repository's `.venv` and `examples/`, with this checkout's code
first on PYTHONPATH, and must exit 0. An HTML comment on the line before the block changes that:
`<!-- example: not run (REASON) -->` skips it with the reason, `<!-- example: runs until
stopped; ready when it prints "TEXT", ... -->` passes once it printed every TEXT (and is then
stopped with SIGTERM). The well-known ports of the examples are moved to free ones (9092 to the
test session's embedded broker unless the block starts its own), so the tests never collide
with a broker or collector already running on this machine; `xdg-open` / `open` (there is no
desktop here) only check that the file they are given exists.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.broker import ensure_topics, free_port
from streams.contract import ALL_TOPICS, PREFIX_ENV, topic_name
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
CONTRACT = ROOT / "docs" / "contract.md"
MARKER = re.compile(r"^<!--\s*example:\s*(.*?)\s*-->$")
RUN_TIMEOUT = 180.0
READY_TIMEOUT = 120.0
STOP_GRACE = 20.0
BROKER_PORT = 9092
OTHER_PORTS = (8088, 8091, 8099, 2525)  # collector, worker web, webhook receiver, SMTP server
# Links to these well-known public docs are fine; anything else must be in the repository.
PUBLIC_DOCS = (
    "https://segment.com/docs/",
    "https://kafka.apache.org/",
    "https://docs.confluent.io/",
)


HINT = (
    "(a block that runs until stopped needs `<!-- example: runs until stopped; ready when it "
    'prints "TEXT" -->` on the line before it; one that cannot run here `<!-- example: not run '
    "(REASON) -->`)"
)


@dataclass(frozen=True)
class Example:
    """One fenced `sh` block: where it is, its text and how its marker says to run it."""

    line: int
    code: str
    skip: str | None = None
    ready: tuple[str, ...] = ()


def parse_marker(text: str) -> tuple[str | None, tuple[str, ...]]:
    """(skip reason, ready texts) of a marker's text; ValueError for one this test cannot run."""
    if text.startswith("not run"):
        reason = re.fullmatch(r"not run \((.+)\)", text)
        if reason is None:
            raise ValueError(f"a skipped example needs its reason: {text!r}")
        return reason.group(1), ()
    if text.startswith("runs until stopped"):
        ready = tuple(re.findall(r'"([^"]+)"', text))
        if not ready:
            raise ValueError(f"say what it prints when ready: {text!r}")
        return None, ready
    raise ValueError(f"unknown example marker: {text!r}")


def examples(text: str) -> list[Example]:
    """The `sh` blocks of a markdown text, in order."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            before = lines[start - 1].strip() if start > 0 else ""
            marker = MARKER.match(before)
            skip, ready = parse_marker(marker.group(1)) if marker else (None, ())
            found.append(Example(start + 1, "\n".join(body) + "\n", skip, ready))
        i += 1
    return found


def starts_a_broker(code: str) -> bool:
    return re.search(r"micromarketing\s+broker\b", code) is not None


def localize(code: str, ports: dict[int, int]) -> str:
    """`code` with each well-known port (`127.0.0.1:PORT`, `--port PORT`, `--web-port PORT`)
    moved."""
    for old, new in ports.items():
        code = re.sub(rf"(?<=127\.0\.0\.1:){old}\b", str(new), code)
        code = re.sub(rf"(?<=-port ){old}\b", str(new), code)  # --port, --web-port
    return code


def _venv() -> Path:
    """The virtualenv the README's `.venv/bin/...` commands stand for."""
    for venv in (ROOT / ".venv", Path(sys.prefix)):
        if (venv / "bin" / "micromarketing").exists():
            return venv
    pytest.skip("no virtualenv with the micromarketing command installed")


def _scratch(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(_venv())
    (work / "examples").symlink_to(ROOT / "examples")
    shims = tmp_path / "bin"  # no desktop here: "open it in a browser" checks the file exists
    shims.mkdir()
    for opener in ("xdg-open", "open"):
        (shims / opener).write_text('#!/bin/sh\ncase "$1" in *://*) exit 0;; esac\ntest -e "$1"\n')
        (shims / opener).chmod(0o755)
    return work


def _running_in_group(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. Zombies do not count: the background jobs
    of a killed shell are orphans, and a container's init may never reap them."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the block's process group (its background jobs too), SIGKILL what stays."""
    for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # (reap the shell itself)
            if not _running_in_group(proc.pid):
                return
            time.sleep(0.2)


README_EXAMPLES = examples(README.read_text())


def test_the_readme_has_examples_and_every_marker_is_understood():
    assert len([e for e in README_EXAMPLES if not e.skip]) >= 5


@pytest.mark.parametrize("example", README_EXAMPLES, ids=[f"line{e.line}" for e in README_EXAMPLES])
def test_readme_example_runs_as_written(
    example: Example, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if example.skip:
        pytest.skip(f"README.md:{example.line}: {example.skip}")
    ports = {port: free_port() for port in OTHER_PORTS}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("MICROMARKETING_BROKER", None)
    env.pop(PREFIX_ENV, None)
    if "9092" in example.code:
        if starts_a_broker(example.code):
            ports[BROKER_PORT] = free_port()
        else:  # the session's broker, as the README's broker with our topics, under a prefix
            bootstrap = request.getfixturevalue("broker").bootstrap
            ports[BROKER_PORT] = int(bootstrap.rsplit(":", 1)[1])
            env[PREFIX_ENV] = prefix = f"readme-{uuid.uuid4().hex[:8]}-"
            ensure_topics(bootstrap, [topic_name(t, prefix) for t in ALL_TOPICS])
    code = localize(example.code, ports)
    work = _scratch(tmp_path)
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", code],
            cwd=work,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            if example.ready:
                missing = _wait_ready(proc, example.ready, out_path, err_path)
                exited = proc.poll()
            else:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=RUN_TIMEOUT)
        finally:
            _stop(proc)
            proc.wait()
    said = f"README.md:{example.line}\n$ {code}\nstdout:\n{out_path.read_text()[-3000:]}\n" + (
        f"stderr:\n{err_path.read_text()[-3000:]}"
    )
    assert "Traceback" not in err_path.read_text(), said
    if example.ready:
        assert exited is None, f"stopped on its own ({exited})\n{said}"
        assert not missing, f"never printed {missing}\n{said}"
    else:
        assert proc.returncode == 0, f"{said}\n{HINT}"


def _wait_ready(
    proc: subprocess.Popen[bytes], ready: tuple[str, ...], out_path: Path, err_path: Path
) -> list[str]:
    """Wait until every text of `ready` was printed (or the block ended); what is missing."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        printed = out_path.read_text(errors="replace") + err_path.read_text(errors="replace")
        missing = [text for text in ready if text not in printed]
        if not missing or proc.poll() is not None or time.monotonic() > deadline:
            return missing
        time.sleep(0.3)


def test_the_contracts_rules_example_passes_rules_check(tmp_path: Path) -> None:
    text = CONTRACT.read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block is not None
    rules = tmp_path / "rules.yaml"
    rules.write_text(block.group(1))
    res = subprocess.run(
        [sys.executable, "-m", "micromarketing", "rules", "check", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("ok: 3 segments, 2 triggers")


@pytest.mark.parametrize("doc", [README, CONTRACT], ids=["README", "contract"])
def test_links_stay_in_the_repository_or_go_to_public_docs(doc: Path) -> None:
    text = doc.read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        for title in re.findall(r"^#+ (.+)$", text, re.M)
    }
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            if not target.startswith(PUBLIC_DOCS):
                bad.append(target)
        elif target.startswith("#"):
            if target[1:] not in anchors:
                bad.append(target)
        else:
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.exists() or not path.is_relative_to(ROOT):
                bad.append(target)
    assert bad == []


def test_markers_say_how_a_block_runs_and_an_unknown_one_is_refused():
    text = (
        "```sh\necho plain\n```\n"
        "<!-- example: not run (needs a GPU) -->\n```sh\nnvidia-smi\n```\n"
        '<!-- example: runs until stopped; ready when it prints "a", "b c" -->\n'
        "```sh\nserve\n```\n```yaml\nnot: shell\n```\n"
    )
    assert examples(text) == [
        Example(1, "echo plain\n"),
        Example(5, "nvidia-smi\n", skip="needs a GPU"),
        Example(9, "serve\n", ready=("a", "b c")),
    ]
    for bad in ("not run", "runs until stopped", "sometimes"):
        with pytest.raises(ValueError):
            parse_marker(bad)


def test_localize_moves_only_the_well_known_ports():
    code = "x --port 9092 &\ny --broker 127.0.0.1:9092 --port 90921 http://127.0.0.1:8099/h\n"
    assert localize(code, {9092: 1, 8099: 2}) == (
        "x --port 1 &\ny --broker 127.0.0.1:1 --port 90921 http://127.0.0.1:2/h\n"
    )


def test_opening_a_file_in_a_browser_checks_that_the_file_exists(tmp_path: Path) -> None:
    _scratch(tmp_path)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    (tmp_path / "report.html").write_text("<html></html>")

    def opens(target: str) -> int:
        return subprocess.run(["xdg-open", target], env=env, cwd=tmp_path, check=False).returncode

    assert (opens("report.html"), opens("http://127.0.0.1:8080/"), opens("missing.html")) == (
        0,
        0,
        1,
    )
