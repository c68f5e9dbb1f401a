"""Where a compiled sampler's time goes: an XLA op-level profile of `model.sampler()` at one batch size.

Runs the registered model (random weights; `--paper-size` for the paper configuration) under TensorFlow's profiler
with XLA's per-thunk trace events on, and writes per call:
- the wall time of the call as `calozoo time` measures it (unprofiled calls), and the time inside the XLA
  executable (profiled calls; the rest of a call is Python, argument handling and variable reads);
- the time of each kind of XLA op (dot, fusion, while, ...) summed over every thread (a while loop's time includes
  the ops inside it, which are counted under their own kinds too), and for the matrix products the bytes of
  weights they read and the rate that makes, and how many of them ran at once (`dot_concurrency`: summed dot time
  over the time in which any dot ran);
- beside it, the read rate of one plain matrix-vector product over a weight set of the same size in the same process
  (the memory floor: bytes / rate).

    python benchmarks/sampler_profile.py caloflow-ds1-photon-student --paper-size --batch 1 --threads 1 \\
        --out benchmarks/sampler_profile_ds1_student.json

The profiler adds a little time per op, so its totals run slightly above `calozoo time`; compare kinds, not the last
digit. Only ratios inside one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np

# XLA reads its flags when the backend starts: set before TensorFlow is imported.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()

import tensorflow as tf  # noqa: E402

from calozoo.data.incident_energies import sample_incident_energies  # noqa: E402
from calozoo.models.base import seed_pair  # noqa: E402
from calozoo.registry import create, load  # noqa: E402
from calozoo.workflow.timing import time_generation  # noqa: E402

DISPATCH_EVENT = "CpuExecutable::ExecuteAsyncOnStream"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("--paper-size", action="store_true")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=20, help="profiled calls (after as many unprofiled ones)")
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


def dot_operand_bytes(hlo: str) -> dict[str, int]:
    """Bytes of the larger operand of every dot in optimized HLO text (the weights, at small batch)."""
    shapes = dict(re.findall(r"%([\w.\-]+) = f32\[([^\]]*)\]", hlo))

    def size(name):
        dims = [int(d) for d in shapes.get(name, "").split(",") if d.strip().isdigit()]
        return int(np.prod(dims)) * 4 if dims else 0

    return {dot: max(size(a), size(b))
            for dot, a, b in re.findall(r"%(dot\.\d+) = f32\[[^\]]*\][^ ]* dot\(%([\w.\-]+), %([\w.\-]+)\)", hlo)}


def read_trace(logdir: str):
    """(name, start ps, duration ms) of every host event of the profile in `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    return [event for plane in space.planes if plane.name == "/host:CPU" for event in _events(plane)]


def _events(plane):
    names = {key: meta.name for key, meta in plane.event_metadata.items()}
    for line in plane.lines:
        for event in line.events:
            start = line.timestamp_ns * 1000 + event.offset_ps
            yield names.get(event.metadata_id, "?"), start, event.duration_ps / 1e9


def busy_ms(intervals) -> float:
    """Length of the union of (start ps, duration ms) intervals: time in which at least one of them ran."""
    total, end = 0.0, None
    for start, ms in sorted(intervals):
        stop = start + ms * 1e9
        if end is None or start > end:
            total += ms
            end = stop
        elif stop > end:
            total += (stop - end) / 1e9
            end = stop
    return total


def op_kind(name: str) -> str | None:
    """dot / fusion / while / copy ... for an XLA thunk's trace name (an HLO instruction name such as
    `subtract_exponential_fusion.6` or `concat_51`); None for TensorFlow's own events (CamelCase, `::`, `end:`)."""
    if not re.fullmatch(r"[a-z][a-z0-9_\-.]*", name) or name.startswith(("end", "tf.")):
        return None
    base = re.sub(r"([._]\d+)+$", "", name)
    if base.startswith("dot"):
        return "dot"
    return "fusion" if base.endswith("fusion") else base


def profile(sample, energies, seed, calls: int, dots: dict[str, int]) -> dict:
    """Op-level totals of `calls` profiled calls of a warmed-up `sample` (ms per call)."""
    with tempfile.TemporaryDirectory(prefix="calozoo_profile_") as logdir:
        tf.profiler.experimental.start(logdir)
        for index in range(calls):
            sample(energies, seed_pair(seed, index)).numpy()
        tf.profiler.experimental.stop()
        events = read_trace(logdir)
    kinds, dot_ms = collections.Counter(), collections.Counter()
    executable, dot_intervals = 0.0, []
    for name, start, ms in events:
        if name == DISPATCH_EVENT:
            executable += ms
        kind = op_kind(name)
        if kind:
            kinds[kind] += ms
        if kind == "dot":
            dot_ms[name] += ms
            dot_intervals.append((start, ms))
    dot_bytes = sum(dots.get(name, 0) for name in dot_ms)
    dot_total = sum(dot_ms.values()) / calls
    return {"executable_ms_per_call_profiled": executable / calls,
            # summed dot time over the time in which any dot ran: 1 when the products run one after another
            "dot_concurrency": sum(ms for _, ms in dot_intervals) / busy_ms(dot_intervals) if dot_intervals else None,
            "op_ms_per_call_all_threads": {k: round(v / calls, 4) for k, v in kinds.most_common()},
            "dots_per_call": len(dot_intervals) / calls, "dot_instructions": len(dot_ms),
            "dot_weight_megabytes": dot_bytes / 1e6,
            "dot_read_rate_gb_per_s": dot_bytes / (dot_total * 1e-3) / 1e9 if dot_total else None}


def plain_read_rate(total_bytes: int, repeats: int = 20) -> float:
    """GB/s of one matrix-vector product per (736, 8464) float32 matrix over as many bytes as `total_bytes`."""
    rows, cols = 736, 8464
    count = max(1, round(total_bytes / (rows * cols * 4)))
    rng = np.random.default_rng(0)
    weights = [tf.Variable(rng.normal(size=(rows, cols)).astype(np.float32)) for _ in range(count)]
    x = tf.constant(rng.normal(size=(1, rows)).astype(np.float32))
    products = tf.function(lambda v: tf.add_n([tf.reduce_sum(tf.matmul(v, w)) for w in weights]), jit_compile=True)
    products(x).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        products(x).numpy()
    seconds = (time.perf_counter() - started) / repeats
    return count * rows * cols * 4 / seconds / 1e9


def main():
    args = parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    model = create(args.name, dtype="float32") if args.paper_size else load(args.name, dtype="float32")
    sample = model.sampler()
    energies = tf.constant(sample_incident_energies(model.dataset, args.batch, 0), tf.float32)
    hlo = sample.experimental_get_compiler_ir(energies, seed_pair(0, 0))(stage="optimized_hlo")
    dots = dot_operand_bytes(hlo)
    # The unprofiled wall time, as `calozoo time` measures it (its warm-up also warms the profiled calls).
    timing = time_generation(model, (args.batch,), repeats=args.calls, warmup=args.calls, progress=False)
    result = {"wall_ms_per_call": timing["results"][0]["mean_ms_per_shower"] * args.batch,
              **profile(sample, energies, 0, args.calls, dots)}
    result["plain_product_read_rate_gb_per_s"] = plain_read_rate(int(result["dot_weight_megabytes"] * 1e6))
    result["memory_floor_ms"] = result["dot_weight_megabytes"] / 1e3 / result["plain_product_read_rate_gb_per_s"] * 1e3
    report = {"model": args.name, "paper_size": args.paper_size, "batch": args.batch, "threads": args.threads,
              "calls": args.calls, "machine": platform.processor() or platform.machine(),
              "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d"), **result}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
