"""SEQSERVE_WORKERS: the combinations that cannot work are refused at start, with a fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from seqserve.service.settings import Settings


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {"SEQSERVE_SNAPSHOT_PATH": "/tmp/s.snap"},
            "SEQSERVE_SNAPSHOT_PATH needs SEQSERVE_WORKERS=1",
        ),
        ({"SEQSERVE_GRPC_PORT": "8001"}, "SEQSERVE_GRPC_PORT is served by one process only"),
        ({"SEQSERVE_MODEL_CONTROL_MODE": "explicit"}, "use poll or none"),
        ({"SEQSERVE_WORKERS": "0"}, "greater than or equal to 1"),
    ],
)
def test_refused_with_several_workers(
    monkeypatch: pytest.MonkeyPatch, repo: Path, env: dict[str, str], needle: str
) -> None:
    monkeypatch.setenv("SEQSERVE_MODEL_REPOSITORY", str(repo))
    monkeypatch.setenv("SEQSERVE_WORKERS", "2")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=needle):
        Settings()


@pytest.mark.parametrize("mode", [None, "poll", "none"])
def test_accepted_with_several_workers(
    monkeypatch: pytest.MonkeyPatch, repo: Path, mode: str | None
) -> None:
    monkeypatch.setenv("SEQSERVE_MODEL_REPOSITORY", str(repo))
    monkeypatch.setenv("SEQSERVE_WORKERS", "2")
    if mode is not None:
        monkeypatch.setenv("SEQSERVE_MODEL_CONTROL_MODE", mode)
    settings = Settings()
    assert settings.workers == 2
    # unset, the mode is the single server's default; the supervisor turns the API off
    assert settings.model_control_mode == (mode or "explicit")


def test_one_worker_keeps_every_combination(monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:
    monkeypatch.setenv("SEQSERVE_MODEL_REPOSITORY", str(repo))
    monkeypatch.setenv("SEQSERVE_SNAPSHOT_PATH", "/tmp/s.snap")
    monkeypatch.setenv("SEQSERVE_GRPC_PORT", "8001")
    monkeypatch.setenv("SEQSERVE_MODEL_CONTROL_MODE", "explicit")
    assert Settings().workers == 1
