"""The lint configuration in pyproject.toml ([tool.ruff]) holds for the whole tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _deps import require_module

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_is_clean():
    require_module("ruff")
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "python", "tests", "bench", "tools"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
