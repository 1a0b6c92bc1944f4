"""Start-up errors in the operator's words: the SEQSERVE_* variable to fix, not pydantic's path."""

from __future__ import annotations

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
