"""Start-up errors in the operator's words: the SEQSERVE_* variable to fix, not pydantic's path."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

PREFIX = "SEQSERVE_"
SECRET_HINTS = ("key", "url", "secret", "password", "token")


def env_name(loc: tuple[int | str, ...]) -> str:
    """("limits", "max_body_bytes") -> SEQSERVE_LIMITS__MAX_BODY_BYTES."""
    return PREFIX + "__".join(str(part).upper() for part in loc)


def describe(exc: ValidationError) -> str:
    """One line per problem: `SEQSERVE_PORT=abc: Input should be a valid integer`."""
    lines = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        loc = error["loc"]
        if not loc:  # a check across settings: its message names the variables itself
            lines.append(f"  {message}")
            continue
        given = error.get("input")
        secret = any(hint in str(loc[-1]).lower() for hint in SECRET_HINTS)
        shown = f"={given}" if isinstance(given, str | int | float) and not secret else ""
        lines.append(f"  {env_name(loc)}{shown}: {message}")
    return "seqserve: bad settings:\n" + "\n".join(lines)


def describe_repository(root: Path, problem: str) -> str:
    """A model that failed its checks at start-up: which one, why, and what to do."""
    where = str(root).rstrip("/") + "/"
    return "\n".join(
        [
            f"seqserve: cannot serve the model repository {root} (SEQSERVE_MODEL_REPOSITORY):",
            f"  {problem.replace(where, '')}",
            "Fix that version (export or `seqserve import` it again), or move it out of the",
            "repository; every <model>/<version>/ folder must pass its checks to start.",
        ]
    )
