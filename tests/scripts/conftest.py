"""The benchmark's helpers import each other as `benchlib.*` (scripts/ on the path, as when
`python scripts/bench.py` runs them)."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
