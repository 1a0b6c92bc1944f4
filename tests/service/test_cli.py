"""The `seqserve` command as a newcomer meets it: help, version, defaults, start-up errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from seqserve import __version__
from seqserve.cli import COMMANDS, main


def test_bare_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: seqserve" in out
    for cmd in COMMANDS:
        assert cmd.name in out
    assert "COMMANDS" not in out  # no developer notes in the user's help


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"seqserve {__version__}"


@pytest.mark.parametrize("command", [c.name for c in COMMANDS if c.name != "bench"])
def test_every_option_has_help_and_shows_its_default(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    from seqserve.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        assert action.help, f"{command} {action.option_strings} has no help"
        if action.default not in (None, False, "==SUPPRESS==") and action.option_strings:
            assert str(action.default) in out, f"{command} {action.option_strings}: no default"


def _serve(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seqserve", "serve"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_settings_name_the_environment_variable() -> None:
    proc = _serve(SEQSERVE_PORT="abc", SEQSERVE_LIMITS__MAX_BODY_BYTES="5")
    assert proc.returncode == 2
    assert "SEQSERVE_PORT=abc:" in proc.stderr
    assert "SEQSERVE_LIMITS__MAX_BODY_BYTES=5:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_secret_settings_are_not_echoed() -> None:
    proc = _serve(SEQSERVE_STATE_STORE="redis", SEQSERVE_REDIS_URL="http://user:hunter2@x")
    assert proc.returncode == 2
    assert "hunter2" not in proc.stderr
