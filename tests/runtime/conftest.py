"""Unit tests of the generated gateway's runtime modules, imported directly from ``generated/``
(pure code: no PocketBase; a scripted local server where a peer is needed)."""

from __future__ import annotations

import sys
from pathlib import Path

GENERATED = Path(__file__).resolve().parents[2] / "generated"
if str(GENERATED) not in sys.path:
    sys.path.insert(0, str(GENERATED))
