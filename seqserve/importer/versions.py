"""Version folders of a model repository: the next free number, and atomic installs.

Torch- and onnx-free: `seqserve export` uses it too, so that no version is ever overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


class VersionExists(FileExistsError):
    """The version folder is already there; versions are never overwritten silently."""


def next_version(repository: str | Path, name: str) -> str:
    """One above the highest numeric version folder of `name` ("1" when there is none)."""
    folder = Path(repository) / name
    present = [
        int(p.name)
        for p in folder.glob("*")
        if p.is_dir() and p.name.isascii() and p.name.isdigit()
    ]
    return str(max(present, default=0) + 1)


def install(
    repository: str | Path,
    name: str,
    version: str,
    write: Callable[[Path], None],
    *,
    force: bool = False,
) -> Path:
    """Build `<repository>/<name>/<version>/` with `write(staging_dir)`, then move it into place.

    `write` may raise: the staging folder is removed and nothing half-written is left behind.
    An existing version is refused unless `force` (then it is replaced after `write` succeeds).
    """
    target = Path(repository) / name / version
    if target.exists() and not force:
        raise VersionExists(f"{target} already exists; versions are never overwritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    created_parent = not any(target.parent.iterdir())
    try:
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{version}-") as tmp:
            staged = Path(tmp) / "staged"
            staged.mkdir()
            write(staged)
            if target.exists():
                if not force:  # appeared while we were writing
                    raise VersionExists(f"{target} already exists; versions are never overwritten")
                shutil.rmtree(target)
            os.rename(staged, target)
    except BaseException:
        if created_parent and not any(target.parent.iterdir()):
            target.parent.rmdir()  # a refused first import leaves no empty model folder
        raise
    return target
