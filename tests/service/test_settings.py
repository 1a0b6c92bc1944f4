"""Settings: environment parsing, start-up validation, and the documented table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from seqserve.service.settings import Settings

ROOT = Path(__file__).parents[2]


def test_environment_with_nested_groups(monkeypatch: pytest.MonkeyPatch, repo: Path) -> None:
    monkeypatch.setenv("SEQSERVE_MODEL_REPOSITORY", str(repo))
    monkeypatch.setenv("SEQSERVE_LIMITS__MAX_SESSIONS", "12")
    monkeypatch.setenv("SEQSERVE_SECURITY__API_KEYS", '["a", "b"]')
    settings = Settings()
    assert settings.limits.max_sessions == 12
    assert settings.api_keys() == ["a", "b"]
    assert "'a'" not in repr(settings)  # secrets stay masked


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SEQSERVE_LIMITS__MAX_SESSIONS": "0"}, "greater than or equal to 1"),
        ({"SEQSERVE_PORT": "70000"}, "less than or equal to 65535"),
        ({"SEQSERVE_SESSIONS__IDLE_TTL_S": "99999999"}, "MAX_IDLE_TTL_S"),
        ({"SEQSERVE_SECURITY__API_KEYS_FILE": "/nonexistent"}, "is not a file"),
        ({"SEQSERVE_LOG_LEVEL": "loud"}, "'debug', 'info'"),
    ],
)
def test_bad_values_fail_with_a_fix(
    monkeypatch: pytest.MonkeyPatch, repo: Path, env: dict[str, str], needle: str
) -> None:
    monkeypatch.setenv("SEQSERVE_MODEL_REPOSITORY", str(repo))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=needle):
        Settings()


def test_every_setting_is_documented() -> None:
    from scripts.settings_table import table

    documented = (ROOT / "docs" / "settings.md").read_text()
    assert documented == table(), "run: python scripts/settings_table.py > docs/settings.md"
    assert "|  |" not in documented  # every row has a meaning
