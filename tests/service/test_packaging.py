"""The install puts everything under one import name, `seqserve`, and ships every package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def _pyproject() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    setuptools = _pyproject()["tool"]["setuptools"]
    folders = {name: ROOT / path for name, path in setuptools["package-dir"].items()}
    found = set()
    for name, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder).parts
            found.add(".".join((name, *rel)))
    assert found == set(setuptools["packages"])


@pytest.mark.e2e
def test_wheel_installs_only_the_seqserve_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("seqserve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"seqserve"}
    for version in ("1", "2"):  # 2 is what sessions get; 1 stays servable by name
        for file in ("model.onnx", "model.json"):
            assert f"seqserve/service/model_repository/co2/{version}/{file}" in names
    assert "seqserve/service/py.typed" in names
    assert "seqserve/cli.py" in names
    # the demo page, its data and the offline docs assets (with their licences)
    for static in (
        "demo.html",
        "demo.js",
        "demo.css",
        "co2.json",
        "vendor/swagger-ui/swagger-ui-bundle.js",
        "vendor/swagger-ui/swagger-ui.css",
        "vendor/swagger-ui/LICENSE",
        "vendor/redoc/redoc.standalone.js",
        "vendor/redoc/LICENSE",
    ):
        assert f"seqserve/service/static/{static}" in names, static


def test_the_client_needs_only_the_base_install() -> None:
    """`pip install seqserve` (no extras) must be enough to import seqserve.client."""
    import ast
    import sys

    deps = " ".join(_pyproject()["project"]["dependencies"]).lower()
    third_party = set()
    for path in (ROOT / "seqserve" / "client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {"seqserve", "__future__"}:
                    third_party.add(top)
    assert third_party, "the client imports no third-party package?"
    missing = sorted(t for t in third_party if f'"{t}' not in deps and f"{t}>" not in deps)
    assert not missing, f"seqserve.client imports {missing}, which are not base dependencies"
