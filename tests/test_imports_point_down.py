"""The layers of the house (README, *How the code is laid out*): apps import downwards only
(core ← departments ← metering ← jobs ← billing ← portal ← demo; accounts reads only
departments and core) and no package's modules import each other in a circle.
import-linter checks the contracts of pyproject.toml over every import of the code,
function-local ones included."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_points_down_and_none_goes_round():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout
