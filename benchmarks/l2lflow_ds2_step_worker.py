"""calozoo's half of the layer-flow training-step throughput in benchmarks/l2lflow_ds2_side_by_side.py (issue 21
part 4); run by that driver in a calozoo interpreter, pinned to the same core as the reference's worker.

Usage: python benchmarks/l2lflow_ds2_step_worker.py DS2_TRAIN_H5 LAYER

Builds l2lflow-ds2-electron in its compact variant (the size of artifact v3: one shared layer flow, 2 blocks, hidden
8) in float32, prepares its training material as `calozoo train` does (calozoo.training.l2lflow: voxel maxima,
LayerData with alpha augmentation, ActNorm initialisation from one batch, Adam with global-norm clipping 100 and the
compact recipe's OneCycle), and compiles its training step with XLA. Prints one JSON line when ready, then for every
line N on stdin: N steps "as it trains" (the recipe's batches of (row, layer) pairs at batch 512 with fresh noise,
window gathering and augmentation inside the compiled step) and N steps on fixed (x, context) batches of layer
LAYER (the model step alone), one JSON line of seconds each.
"""

import json
import sys
import time

import h5py
import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import tf_keras  # noqa: E402
from side_by_side import layer_flow_losses  # noqa: E402 (benchmarks/, this script's folder)

from calozoo.registry import create, get_entry  # noqa: E402
from calozoo.training.l2lflow import LayerData  # noqa: E402
from calozoo.training.schedules import make_schedule  # noqa: E402
from calozoo.training.settings import fit_validation_rows  # noqa: E402
from calozoo.training.trainer import _batches, _make_step  # noqa: E402


def main():
    path, layer = sys.argv[1], int(sys.argv[2])
    variant = get_entry("l2lflow-ds2-electron").variant("compact")
    spec = dict(variant.training["layer_flows"])
    batch_size = int(spec["batch_size"])
    model = create("l2lflow-ds2-electron", variant="compact")
    with h5py.File(path, "r") as f:
        energies, showers = f["incident_energies"][:], f["showers"][:]
    fit, _ = fit_validation_rows(len(energies), 0.1, 0)
    model.set_layer_maxima(showers[fit])
    train = LayerData(model, showers[fit], energies[fit], augment_alpha=True)
    flow = model.layer_flow
    arrays = train.arrays("layer_flow")
    first = np.random.default_rng(0).permutation(len(arrays[0]))[:batch_size]
    flow.initialize(*train.inputs("layer_flow", tf.constant([0, 7], tf.int64), *[a[first] for a in arrays]))
    generator = tf.random.Generator.from_seed(101)
    steps_total = int(spec["epochs"]) * -(-len(arrays[0]) // batch_size)
    optimizer = tf_keras.optimizers.legacy.Adam(learning_rate=make_schedule(spec["schedule"], steps_total),
                                                global_clipnorm=spec.get("clip_norm"))

    recipe_loss, model_loss = layer_flow_losses(flow, train, generator)

    variables = list(flow.trainable_variables)
    recipe_step = _make_step(recipe_loss, variables, optimizer, None, jit_compile=True)
    model_step = _make_step(model_loss, variables, optimizer, None, jit_compile=True)
    rows = np.arange(train.n)
    fixed = []
    for i in range(4):
        pick = np.random.default_rng(i).permutation(rows)[:batch_size]
        fixed.append(train.inputs("layer_flow", tf.constant([1, i], tf.int64), pick, np.full(batch_size, layer)))
    state = {"epoch": 0, "batches": iter(())}

    def next_batch():
        while True:
            for batch in state["batches"]:
                if len(batch[0]) == batch_size:
                    return batch
            state["epoch"] += 1
            state["batches"] = _batches(arrays, batch_size, 0, state["epoch"])

    print(json.dumps({"ready": True, "n_params": int(sum(np.prod(v.shape) for v in variables)),
                      "batch": batch_size}), flush=True)
    for line in sys.stdin:
        n = int(line)
        started = time.perf_counter()
        for _ in range(n):
            float(recipe_step(*next_batch())[0])
        as_trained = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(n):
            float(model_step(*fixed[i % len(fixed)])[0])
        model = time.perf_counter() - started
        print(json.dumps({"as_trained_s": as_trained, "model_step_s": model}), flush=True)


if __name__ == "__main__":
    main()
