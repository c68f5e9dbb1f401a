"""Issue 17, part 4: `--help` and usage errors without TensorFlow (fast), no TensorFlow / absl log lines unless -v,
`python -m calozoo`."""

import subprocess
import sys
import time

_NO_TENSORFLOW = """
import sys
from click.testing import CliRunner
from calozoo_tools.cli import SUBCOMMANDS, main

runner = CliRunner()
assert runner.invoke(main, ["--help"]).exit_code == 0
for name in SUBCOMMANDS:
    help_result = runner.invoke(main, [name, "--help"])
    assert help_result.exit_code == 0, (name, help_result.output)
for args in (["generate"], ["train", "x"], ["evaluate", "a"], ["info"], ["no-such-command"], ["synthesize", "9"],
             ["time"], ["export", "x"], ["generate", "x", "-o", "y.h5", "--shard", "bad"]):
    result = runner.invoke(main, args)
    assert result.exit_code == 2, (args, result.output)
    assert sum(line.startswith("Error") for line in result.output.splitlines()) == 1, (args, result.output)
heavy = [m for m in ("tensorflow", "tensorflow_probability", "tf_keras", "calozoo.registry") if m in sys.modules]
assert not heavy, heavy
print("ok")
"""

LOG_MARKERS = ("I0000", "E0000", "W0000", "absl::InitializeLog", "oneDNN", "cuda", "CUDA", "cpu_feature_guard")


def _python(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def test_help_and_usage_errors_do_not_import_tensorflow():
    result = _python("-c", _NO_TENSORFLOW)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr[-3000:]


def test_help_is_quick_and_python_m_calozoo_works():
    _python("-m", "calozoo", "--help")  # warm the file cache
    started = time.perf_counter()
    result = _python("-m", "calozoo", "--help")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0 and "Usage: calozoo" in result.stdout and "generate" in result.stdout
    assert elapsed < 3.0, f"calozoo --help took {elapsed:.1f} s (about 0.1-0.3 s expected; TensorFlow imported?)"


def test_no_tensorflow_log_lines_unless_verbose(tmp_path):
    result = _python("-m", "calozoo", "list", "caloflow-ds1-photon-s*")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "caloflow-ds1-photon-student" in result.stdout
    noisy = [line for line in result.stderr.splitlines() if any(marker in line for marker in LOG_MARKERS)]
    assert not noisy, noisy
    errors = _python("-m", "calozoo", "info", "no-such-model")
    assert errors.returncode == 1 and errors.stderr.strip().splitlines() == [
        line for line in errors.stderr.strip().splitlines() if line.startswith("Error")], errors.stderr
