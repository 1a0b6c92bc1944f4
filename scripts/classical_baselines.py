"""The shipped CO2 model against classical forecasters: the tables of docs/model.md.

    python scripts/classical_baselines.py [--model DIR_V1] [--hybrid DIR_V2] [--refit]

Fits persistence, seasonal naive, SARIMA(1,1,1)(1,1,1,52), additive Holt-Winters and a
structural model (statsmodels UnobservedComponents) on the training split, scores them with the
LSTM (co2/1) and the LSTM + structural filter hybrid (co2/2) on the test protocol of
`model/evaluate.py` (each test week the target of the forecast made h weeks before it), runs
Diebold-Mariano tests of v1 and v2 against SARIMA and the structural model at h = 1..13, and
repeats them vs SARIMA on yearly origins 1995..2001 with SARIMA refitted on everything before
each year. Fitting takes about ten minutes on one core (the yearly SARIMA
refits dominate), so fitted parameters are cached in `model/baselines_params.json`; `--refit`
fits again. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from seqserve.model import baselines as bl
from seqserve.model.data import SEASON, load_prepared
from seqserve.model.onnx_forecast import onnx_paths

ROOT = Path(__file__).parents[1]
CACHE = ROOT / "model" / "baselines_params.json"
H = 13
TABLE_H = (1, 4, 8, 13)
YEARS = range(1995, 2002)


def fitted(refit: bool, prep: object, yearly: bool) -> dict[str, object]:
    cache = {} if refit or not CACHE.is_file() else json.loads(CACHE.read_text())
    raw, dates = prep.raw, prep.dates  # type: ignore[attr-defined]
    train = raw[: prep.val_start]  # type: ignore[attr-defined]
    if "sarima" not in cache:
        cache["sarima"] = bl.sarima_params(train)
    if "uc" not in cache:
        cache["uc"] = bl.uc_params(train)
    if "holt_winters" not in cache:
        cache["holt_winters"] = bl.holt_winters_params(train)
    fit_yearly, yearly = yearly, cache.setdefault("sarima_yearly", {})
    for year in YEARS if fit_yearly else ():
        if str(year) not in yearly:
            end = int(np.searchsorted(dates, pd.Timestamp(f"{year}-01-01")))
            yearly[str(year)] = bl.sarima_params(raw[:end], start=cache["sarima"])
            CACHE.write_text(json.dumps(cache, indent=1) + "\n")  # keep progress
    CACHE.write_text(json.dumps(cache, indent=1) + "\n")
    return cache


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "service/model_repository/co2/1"))
    p.add_argument("--hybrid", default=str(ROOT / "service/model_repository/co2/2"))
    p.add_argument("--refit", action="store_true", help="fit again instead of using the cache")
    p.add_argument(
        "--no-yearly-fits", action="store_true", help="use only the cached yearly SARIMA refits"
    )
    args = p.parse_args()
    prep = load_prepared()
    raw, n = prep.raw, len(prep.raw)
    params = fitted(args.refit, prep, not args.no_yearly_fits)
    targets = np.arange(prep.test_start, n)
    first = prep.test_start - H
    origins = np.arange(first, n - 1)
    truth = raw[targets]
    lstm_paths = onnx_paths(args.model, raw, origins, H)
    hybrid_paths = onnx_paths(args.hybrid, raw, origins, H)
    paths = {
        "LSTM (v1)": lstm_paths,
        "LSTM + structural filter (v2)": hybrid_paths,
        "SARIMA(1,1,1)(1,1,1,52)": bl.sarima_paths(params["sarima"], raw, origins, H),
        "structural (UnobservedComponents)": bl.uc_paths(params["uc"], raw, origins, H),
        "Holt-Winters (additive, 52)": bl.holt_winters_paths(
            params["holt_winters"], raw, origins, H
        ),
    }
    fc = {name: bl.by_horizon(p, first, targets) for name, p in paths.items()}
    fc["persistence"] = {h: raw[targets - h] for h in range(1, H + 1)}
    fc["seasonal naive"] = dict.fromkeys(range(1, H + 1), raw[targets - SEASON])

    def mae(f: np.ndarray, t: np.ndarray = truth) -> float:
        return float(np.abs(f - t).mean())

    print("| model | " + " | ".join(f"h={h} MAE" for h in TABLE_H) + " | mean h=1..13 |")
    print("|---|" + "---|" * (len(TABLE_H) + 1))
    for name, per in sorted(fc.items(), key=lambda kv: mae(kv[1][H])):
        cells = [f"{mae(per[h]):.3f}" for h in TABLE_H]
        mean = np.mean([mae(per[h]) for h in range(1, H + 1)])
        print(f"| {name} | " + " | ".join(cells) + f" | {mean:.3f} |")

    print("\nDiebold-Mariano, absolute-error loss, HLN-corrected (negative: the first is better)\n")
    print("| h | " + " | ".join(str(h) for h in range(1, H + 1)) + " |")
    print("|---|" + "---|" * H)
    pairs = [
        ("LSTM + structural filter (v2)", "SARIMA(1,1,1)(1,1,1,52)"),
        ("LSTM + structural filter (v2)", "LSTM (v1)"),
        ("LSTM + structural filter (v2)", "structural (UnobservedComponents)"),
        ("LSTM (v1)", "SARIMA(1,1,1)(1,1,1,52)"),
        ("LSTM (v1)", "structural (UnobservedComponents)"),
    ]
    for mine, other in pairs:
        tests = [
            bl.diebold_mariano(fc[mine][h] - truth, fc[other][h] - truth, h)
            for h in range(1, H + 1)
        ]
        print(f"| {mine} vs {other}: DM | " + " | ".join(f"{t.stat:+.2f}" for t in tests) + " |")
        print("| p-value | " + " | ".join(f"{t.p_value:.3f}" for t in tests) + " |")

    print("\nYearly origins: MAE h=1 / h=13 (SARIMA refitted on all weeks before each year)\n")
    print("| year | v1 h=1 | v2 h=1 | SARIMA h=1 | v1 h=13 | v2 h=13 | SARIMA h=13 |")
    print("|---|---|---|---|---|---|---|")
    for year in YEARS:
        if str(year) not in params["sarima_yearly"]:
            continue
        lo = int(np.searchsorted(prep.dates, pd.Timestamp(f"{year}-01-01")))
        hi = int(np.searchsorted(prep.dates, pd.Timestamp(f"{year + 1}-01-01")))
        yt = np.arange(lo, hi)
        yo = np.arange(lo - H, hi - 1)
        sp = bl.by_horizon(
            bl.sarima_paths(params["sarima_yearly"][str(year)], raw, yo, H), lo - H, yt
        )
        lp = bl.by_horizon(lstm_paths, first, yt)
        hp = bl.by_horizon(hybrid_paths, first, yt)
        cells = [mae(f[h], raw[yt]) for h in (1, H) for f in (lp, hp, sp)]
        print(f"| {year} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
