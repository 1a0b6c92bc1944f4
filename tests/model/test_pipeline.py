"""End to end on the real data with a tiny model: train -> export -> verify, and determinism."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqserve.cli import main

pytestmark = pytest.mark.model

ROOT = Path(__file__).parents[2]
TINY = {
    "hidden_size": 8,
    "max_epochs": 3,
    "window": 52,
    "stride": 16,
    "threads": 1,
    "progress": False,
}


def test_train_export_verify_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, plots, repo = tmp_path / "run", tmp_path / "img", tmp_path / "repo"
    args = ["--out", str(run), "--plots", str(plots), "--quiet"]
    args += ["--hidden-size", "8", "--max-epochs", "3", "--window", "52", "--stride", "16"]
    assert main(["train", *args]) == 0
    out = capsys.readouterr().out
    assert "persistence" in out
    assert "seasonal_naive" in out
    assert (run / "checkpoint.pt").is_file()
    for png in ("loss.png", "forecast.png"):
        assert (plots / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    ckpt = str(run / "checkpoint.pt")
    assert main(["export", "--checkpoint", ckpt, "--repository", str(repo), "--name", "tiny"]) == 0
    model_dir = repo / "tiny" / "1"
    doc = json.loads((model_dir / "model.json").read_text())
    assert doc["name"] == "tiny"
    assert doc["cell"] == "lstm"
    assert doc["signature"]["state"][0] == {"input": "h0", "output": "hn", "layers": 1, "size": 8}
    assert doc["features"][0]["difference"] is True
    assert doc["outputs"] == [{"name": "co2_next", "feature": 0}]
    assert set(doc["metrics"]["test"]) == {"h1", "h13"}
    assert doc["training"]["dataset"]["split"]["test"][0] == "1995-01-07"
    capsys.readouterr()

    assert main(["verify", str(model_dir), "--checkpoint", ckpt]) == 0
    assert capsys.readouterr().out.startswith("OK tiny v1")
    assert not list(repo.glob("tiny/.*")), "no staging directory left behind"

    # a version is never overwritten: an existing one is refused, the default is the next one
    before = (model_dir / "model.json").read_bytes()
    export = ["export", "--checkpoint", ckpt, "--repository", str(repo), "--name", "tiny"]
    assert main([*export, "--version", "1"]) == 1
    assert "--force" in capsys.readouterr().err
    assert (model_dir / "model.json").read_bytes() == before
    assert main(export) == 0
    assert sorted(p.name for p in (repo / "tiny").iterdir()) == ["1", "2"]


def test_train_never_overwrites_a_run_or_the_tracked_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative default (docs/img before #17) lands in tmp_path
    tiny = ["--hidden-size", "8", "--max-epochs", "2", "--window", "52", "--stride", "16"]
    args = ["train", "--out", "run", "--quiet", *tiny]
    assert main(args) == 0
    run = tmp_path / "run"
    # plots go into the run directory unless --plots names another place
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "forecast.png", "loss.png"]
    assert not (tmp_path / "docs").exists()
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()

    assert main([*args, "--seed", "1"]) == 1
    assert "--force" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == before

    assert main([*args, "--seed", "1", "--force", "--no-plots"]) == 0
    assert (run / "checkpoint.pt").read_bytes() != before


def test_same_seed_gives_the_same_model_and_metrics(tmp_path: Path) -> None:
    import torch
    from seqserve.model.export import load_checkpoint, onnx_bytes
    from seqserve.model.train import TrainConfig, train

    runs = []
    for k in range(2):
        cfg = TrainConfig(out_dir=str(tmp_path / f"r{k}"), plots=False, **TINY)
        runs.append(train(cfg))
    a, b = runs
    assert a["metrics"] == b["metrics"]
    assert a["history"] == b["history"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    onnx_a = onnx_bytes(load_checkpoint(tmp_path / "r0" / "checkpoint.pt")[0])
    onnx_b = onnx_bytes(load_checkpoint(tmp_path / "r1" / "checkpoint.pt")[0])
    assert onnx_a == onnx_b

    other = train(dataclasses.replace(cfg, seed=1, out_dir=str(tmp_path / "r2")))
    assert other["history"] != a["history"]


def test_split_is_by_time_and_scaling_uses_train_only() -> None:
    import pandas as pd
    from seqserve.model.data import load_co2, prepare

    series, n_missing = load_co2()
    assert len(series) == 2284
    assert n_missing == 59
    assert not series.isna().any()
    prep = prepare(series, n_missing)
    assert prep.dates[prep.val_start - 1] < pd.Timestamp("1990-01-01") <= prep.dates[prep.val_start]
    assert (
        prep.dates[prep.test_start - 1] < pd.Timestamp("1995-01-01") <= prep.dates[prep.test_start]
    )
    future = series.copy()
    future.iloc[prep.val_start :] += np.linspace(0, 50, len(series) - prep.val_start)
    changed = prepare(future, n_missing)
    assert (changed.mean, changed.std) == (prep.mean, prep.std)
    assert prep.inputs[0] == (0.0 - prep.mean) / prep.std  # first step: difference 0


def test_baselines_are_scored_on_the_test_split() -> None:
    from seqserve.model.data import SEASON, load_prepared
    from seqserve.model.evaluate import score

    prep = load_prepared()
    t = np.arange(prep.test_start, len(prep.raw))
    persistence = score(prep.raw[t - 1], prep.raw[t])
    seasonal = score(prep.raw[t - SEASON], prep.raw[t])
    assert 0.3 < persistence.mae < 0.5
    assert 1.5 < seasonal.mae < 2.0
    assert persistence.rmse >= persistence.mae


def test_train_and_export_without_torch_say_what_to_install() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; import seqserve.cli; "
        "sys.exit(seqserve.cli.main(sys.argv[1:]))"
    )
    for command in (["train", "--quiet"], ["export"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *command],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "install seqserve[train]" in proc.stderr
