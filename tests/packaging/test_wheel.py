"""THE WHEEL TEST: build the wheel, install it into a fresh environment outside the checkout, and use the zoo from
there (`calozoo list`, `calozoo generate`, `python -m calozoo`, `zoo.load`). About 1-2 minutes on 2 cores.

The fresh environment is a venv without system site-packages; a .pth line makes the running interpreter's
site-packages (TensorFlow & co.) importable without processing their .pth files, so an editable calozoo installed
there cannot shadow the wheel. The test checks that calozoo really comes from the venv.
"""

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import h5py
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
_IGNORED = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs",
                                  "shared", "*.tmp")

pytestmark = pytest.mark.wheel


def _run(args, cwd, env=None, timeout=600):
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the checkout (so that no build/ folder is left in the checkout)."""
    source = tmp / "source"
    shutil.copytree(REPOSITORY, source, ignore=_IGNORED)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", source, "-w", tmp / "dist"],
         cwd=tmp)
    return next((tmp / "dist").glob("calozoo-*.whl"))


def _fresh_venv(tmp: Path) -> Path:
    """A venv that sees this interpreter's third-party packages but none of their .pth hooks (editable finders)."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    python = venv / "bin" / "python"
    venv_site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp)
                     .stdout.strip())
    outside = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
               if Path(p).is_dir()]
    (venv_site / "_system_site.pth").write_text("\n".join(sorted(outside)) + "\n")
    return venv


def test_wheel_installs_a_working_zoo_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    venv = _fresh_venv(tmp_path)
    python, calozoo = venv / "bin" / "python", venv / "bin" / "calozoo"
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CALOZOO_ARTIFACTS", "CALOZOO_CONFIGS")}
    env["CALOZOO_HOME"] = str(tmp_path / "home")
    _run([python, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", wheel], cwd=work, env=env)

    where = _run([python, "-c",
                  "import calozoo, calozoo_tools; print(calozoo.__file__); print(calozoo_tools.__file__)"],
                 cwd=work, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    listed = _run([calozoo, "list"], cwd=work, env=env).stdout
    assert "caloflow-ds1-photon-student" in listed and "shipped v1" in listed
    assert "-" not in listed.split("caloflow-ds1-photon-student", 1)[1].split()[0]

    _run([calozoo, "generate", "caloflow-ds1-photon-student", "-n", 10, "-o", "X.h5"], cwd=work, env=env)
    with h5py.File(work / "X.h5") as handle:
        assert handle["showers"].shape == (10, 368)
        assert Path(handle.attrs["artifact"]).is_relative_to(venv)

    assert "Usage: calozoo" in _run([python, "-m", "calozoo", "--help"], cwd=work, env=env).stdout
    loaded = _run([python, "-c", "import calozoo as zoo; m = zoo.load('caloflow-ds1-photon-student'); "
                                 "print(m.artifact_origin, m.artifact_dir, m.generate([65536.0] * 3).shape)"],
                  cwd=work, env=env).stdout.split()
    assert loaded[0] == "shipped" and Path(loaded[1]).is_relative_to(venv) and "(3," in loaded[2]
