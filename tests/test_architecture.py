"""The layer contract of setup.cfg ([importlinter]): every import in calozoo and calozoo_tools runs downward."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / "setup.cfg").is_file(), reason="needs the checkout's setup.cfg")
def test_imports_run_downward_through_the_layers():
    command = shutil.which("lint-imports") or pytest.fail("import-linter is not installed (pip install -e '.[test]')")
    done = subprocess.run([command, "--config", str(ROOT / "setup.cfg")], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout
