"""Build `co2` version 2: the shipped LSTM (v1) with the structural filter beside it, one graph.

    python scripts/co2_v2.py [--weight 0.25] [--force]

The filter is the steady-state Kalman filter of the UC model in `model/baselines_params.json`
(fitted on the training split), in modal form (`model.structural`); its state is the extra
state pair `s0 -> sn`. The one-step output is `lstm + g * (filter - lstm)` with
`g = (1 - w) * ramp`: w chosen on the validation years by `scripts/co2_combine.py`, the ramp
(0 for a new session, to 1 over years, as the filter warms up) on validation years with short
histories (`docs/model.md`). The manifest's metrics are scored on the written
files through ONNX Runtime, as the server forecasts; the directory is installed only after
`seqserve verify` passes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from seqserve.model.data import SEASON, load_prepared
from seqserve.model.export import manifest_json
from seqserve.model.onnx_forecast import onnx_paths
from seqserve.model.structural import STATE_IN, STATE_OUT, add_filter, modal, steady_filter
from seqserve.model.verify import verify_model_dir
from seqserve.service.runtime.manifest import Manifest, StatePair

from seqserve.importer.versions import install

ROOT = Path(__file__).parents[1]
REPO = ROOT / "service" / "model_repository"
H = 13


def metrics(model_dir: Path, prep: object) -> dict[str, object]:
    """Test (and validation) MAE/RMSE by horizon, the test protocol of `model.evaluate`."""
    raw, n = prep.raw, len(prep.raw)  # type: ignore[attr-defined]
    first = prep.val_start - H  # type: ignore[attr-defined]
    paths = onnx_paths(model_dir, raw, np.arange(first, n - 1), H)
    split = {
        "val": np.arange(prep.val_start, prep.test_start),  # type: ignore[attr-defined]
        "test": np.arange(prep.test_start, n),  # type: ignore[attr-defined]
    }

    def scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        err = pred - truth
        return {
            "mae": round(float(np.abs(err).mean()), 4),
            "rmse": round(float(np.sqrt((err**2).mean())), 4),
        }

    out: dict[str, object] = {}
    for name, tg in split.items():
        truth = raw[tg]
        fc = {h: paths[tg - h - first, h - 1] for h in range(1, H + 1)}
        out[name] = {
            f"h{h}": {
                "model": scores(fc[h], truth),
                "persistence": scores(raw[tg - h], truth),
                "seasonal_naive": scores(raw[tg - SEASON], truth),
            }
            for h in (1, H)
        }
        out[f"{name}_mae_by_horizon"] = {
            "model": [scores(fc[h], truth)["mae"] for h in range(1, H + 1)]
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weight", type=float, default=0.25, help="the LSTM's share of the output")
    p.add_argument("--ramp", type=float, default=0.995, help="warm-up ramp's rate per week")
    p.add_argument("--ramp-stages", type=int, default=3, help="warm-up ramp's stages")
    p.add_argument("--base", default=str(REPO / "co2" / "1"))
    p.add_argument("--force", action="store_true", help="replace an existing co2/2")
    args = p.parse_args()
    prep = load_prepared()
    base = Path(args.base)
    params = json.loads((ROOT / "model" / "baselines_params.json").read_text())["uc"]
    filt = modal(steady_filter(params, prep.raw[: prep.val_start]))
    warmup = (args.ramp, args.ramp_stages)
    graph = add_filter(
        onnx.load(str(base / "model.onnx")), filt, prep.mean, prep.std, args.weight, warmup
    )
    data = graph.SerializeToString()
    v1 = json.loads((base / "model.json").read_text())
    sig = v1["signature"]
    size = filt.size + args.ramp_stages
    sig["state"].append(StatePair(input=STATE_IN, output=STATE_OUT, layers=1, size=size))
    training = v1["training"] | {
        "structural": {
            "what": "steady-state Kalman filter of statsmodels UnobservedComponents (local "
            "linear trend, 3 harmonics of a 52.18-week year, AR(1)) fitted on the training "
            "split, in modal form, as an ONNX RNN node with the identity activation",
            "uc_params": params,
            "lstm_weight": args.weight,
            "warmup_ramp": {"rate": args.ramp, "stages": args.ramp_stages},
            "lstm": f"co2/1 (sha256 {v1['sha256']})",
            "weight_chosen_on": "validation MAE, mean over h=1..13 (scripts/co2_combine.py)",
        },
        "command": "python scripts/co2_v2.py",
    }
    manifest = Manifest.model_validate(
        v1
        | {
            "version": "2",
            "description": "Weekly Mauna Loa CO2 (ppm): next week's value, an LSTM beside the "
            "structural (UC) filter in one graph",
            "sha256": hashlib.sha256(data).hexdigest(),
            "signature": sig,
            "training": training,
            "metrics": {},
        }
    )

    def write(staged: Path) -> None:
        (staged / "model.onnx").write_bytes(data)
        (staged / "model.json").write_text(manifest_json(manifest))
        scored = manifest.model_copy(update={"metrics": metrics(staged, prep)})
        (staged / "model.json").write_text(manifest_json(scored))
        print(verify_model_dir(staged).summary())

    out = install(REPO, "co2", "2", write, force=args.force)
    m = json.loads((out / "model.json").read_text())["metrics"]
    print(out, "test MAE by horizon", m["test_mae_by_horizon"]["model"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
