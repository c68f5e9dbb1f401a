"""The layer contract of setup.cfg ([importlinter]): every import in calozoo and calozoo_tools runs downward."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1], " \
       "no_cache=True))"


@pytest.mark.skipif(not (ROOT / "setup.cfg").is_file(), reason="needs the checkout's setup.cfg")
def test_imports_run_downward_through_the_layers():
    if importlib.util.find_spec("importlinter") is None:
        pytest.fail("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", LINT, str(ROOT / "setup.cfg")], cwd=ROOT, capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout
