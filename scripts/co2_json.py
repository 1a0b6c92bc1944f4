"""Write the demo page's data (service/static/co2.json) from statsmodels' weekly CO2 series.

python scripts/co2_json.py   (needs the train extra; the server itself never imports statsmodels)
"""

from __future__ import annotations

import json
from pathlib import Path

from seqserve.model.data import PROVENANCE, load_co2

OUT = Path(__file__).resolve().parents[1] / "service" / "static" / "co2.json"


def main() -> None:
    series, n_missing = load_co2()  # the training data exactly: missing weeks interpolated
    document = {
        **PROVENANCE,
        "note": f"{n_missing} missing weeks interpolated in time, as for training",
        "generated_by": "scripts/co2_json.py",
        "start": series.index[0].date().isoformat(),
        "step_days": 7,
        "values": [round(float(v), 4) for v in series.to_numpy()],
    }
    OUT.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({len(document['values'])} weeks)")


if __name__ == "__main__":
    main()
