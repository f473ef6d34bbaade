"""The command line speaks to newcomers: help for every option, a version, one-line errors."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from micromarketing.cli import build_parser, main
from tests.conftest import EXAMPLES

RULES = str(EXAMPLES / "rules.yaml")
EVENTS = str(EXAMPLES / "events.jsonl")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
RULES_ISSUE = re.compile(r"^\S+:\d+:\d+: ")


def _parsers(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[argparse.ArgumentParser, list[argparse.Action]]]:
    """Every parser of the tree with its sub-command actions' help texts walked too."""
    yield parser, parser._actions
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_and_argument_of_every_command_has_a_help_text():
    missing = [
        f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        for parser, actions in _parsers(build_parser())
        for action in actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []


def test_every_subcommand_has_a_one_line_summary_in_its_parents_help():
    missing = [
        f"{parser.prog} {choice.dest}"
        for parser, actions in _parsers(build_parser())
        for action in actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
        if not choice.help
    ]
    assert missing == []


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == (
        f"micromarketing {importlib.metadata.version('micromarketing')}\n"
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own exits
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


MISTAKES: list[tuple[str, list[str], int, str]] = [
    ("no command", [], 2, "micromarketing: the following arguments are required: command"),
    ("unknown command", ["bogus"], 2, "micromarketing: argument command: invalid choice: 'bogus'"),
    (
        "missing option",
        ["replay", EVENTS, "--rules", RULES],
        2,
        "micromarketing replay: the following arguments are required: --out",
    ),
    (
        "bad number",
        ["replay", EVENTS, "--rules", RULES, "--out", "o", "--partitions", "four"],
        2,
        "micromarketing replay: argument --partitions: invalid int value: 'four'",
    ),
    (
        "nested command",
        ["rules", "check"],
        2,
        "micromarketing rules check: the following arguments are required: file",
    ),
    (
        "missing events file",
        ["replay", "no-such.jsonl", "--rules", RULES, "--out", "OUT"],
        2,
        "micromarketing replay: no such file: no-such.jsonl",
    ),
    (
        "missing rules file",
        ["replay", EVENTS, "--rules", "no-such.yaml", "--out", "OUT"],
        2,
        "micromarketing replay: cannot read the rules file no-such.yaml: No such file or directory",
    ),
    (
        "bad --close-at",
        ["replay", EVENTS, "--rules", RULES, "--out", "OUT", "--close-at", "soon"],
        2,
        "micromarketing replay: ",
    ),
    (
        "output folder that cannot be made",
        ["replay", EVENTS, "--rules", RULES, "--out", "/proc/no/such/dir"],
        1,
        "micromarketing replay: /proc/no: No such file or directory",
    ),
    (
        "rules check of a missing file",
        ["rules", "check", "no-such.yaml"],
        2,
        "micromarketing rules check: no-such.yaml: no such file",
    ),
    (
        "worker with a missing rules file",
        ["worker", "--rules", "no-such.yaml"],
        2,
        "micromarketing worker: cannot read the rules file no-such.yaml: No such file or directory",
    ),
    (
        "fit of a missing file",
        ["fit", "no-such.jsonl", "--calibration-end", "2026-09-30", "--out", "m.yaml"],
        2,
        "micromarketing fit: cannot read no-such.jsonl",
    ),
    ("tail --max 0", ["tail", "segment-changes", "--max", "0"], 2, "micromarketing tail: --max"),
]


@pytest.mark.parametrize(
    ("argv", "code", "start"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_a_mistake_is_one_line_naming_the_command(argv, code, start, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got, lines = _run(argv, capsys)
    assert (got, lines[:1]) == (code, lines[:1]) and len(lines) == 1, lines
    assert lines[0].startswith(start)


@pytest.mark.parametrize(
    "argv",
    [
        ["broker", "--port", "{port}"],
        ["collector", "--port", "{port}"],
        ["worker", "--rules", RULES, "--web-port", "{port}"],
    ],
    ids=["broker", "collector", "worker"],
)
def test_a_port_in_use_is_said_in_one_line(argv, taken_port, capsys):
    argv = [a.format(port=taken_port) for a in argv]
    code, lines = _run(argv, capsys)
    assert code == 1
    option = "--web-port" if argv[0] == "worker" else "--port"
    assert lines == [
        f"micromarketing {argv[0]}: port {taken_port} is in use (Address already in use); "
        f"pick another with {option} N"
    ]


def test_an_address_that_cannot_be_listened_on_is_said_in_one_line(capsys):
    code, lines = _run(["collector", "--host", "no-such-host.invalid", "--port", "8088"], capsys)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(
        "micromarketing collector: cannot listen on no-such-host.invalid:8088: "
    )


def test_a_bad_rules_file_keeps_its_file_line_column_lines(capsys, tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("segments:\n  - name: x\n    when: orderz > 1\n")
    code, lines = _run(["replay", EVENTS, "--rules", str(bad), "--out", str(tmp_path)], capsys)
    assert code == 1
    assert lines == [f"{bad}:3:11: unknown feature 'orderz'; did you mean 'orders'?"]
    assert all(RULES_ISSUE.match(line) for line in lines)


def test_no_mistake_prints_a_log_formatted_line_or_a_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _, argv, _, _ in MISTAKES:
        _, lines = _run(argv, capsys)
        assert not [line for line in lines if LOG_LINE.match(line) or "Traceback" in line]


def test_an_unexpected_error_is_not_hidden(monkeypatch):
    import streams.engine.rules.command as rules_command

    def broken(args: argparse.Namespace) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(rules_command, "run", broken)
    with pytest.raises(ZeroDivisionError):
        main(["rules", "check", str(Path(RULES))])
