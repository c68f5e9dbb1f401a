"""The two checks behind the "why" of benchmarks/l2lflow_ds2_side_by_side.json (issue 21, L2LFlows DS2); run with
calozoo's interpreter (no PyTorch).

    W=/tmp/l2lwork   # the work directory of benchmarks/l2lflow_ds2_side_by_side.py (ds2_train.h5, ds2_heldout.h5)
    PYTHONPATH=/tmp/tspA:$PWD taskset -c 0 python benchmarks/l2lflow_ds2_side_by_side_probes.py inputs --work $W
    PYTHONPATH=/tmp/tspA:$PWD python benchmarks/l2lflow_ds2_side_by_side_probes.py renormalize --work $W
    nice -n 10 calozoo evaluate $W/v3_raw_calozoo_post.h5 $W/ds2_heldout.h5 -d 2 -m hist,shape \\
        -o $W/eval_v3raw_calozoo_post
    nice -n 10 calozoo evaluate $W/v3_raw_reference_post.h5 $W/ds2_heldout.h5 -d 2 -m hist,shape \\
        -o $W/eval_v3raw_reference_post

`inputs`: seconds per batch of 512 of the compact layer flow's input preparation (LayerData.inputs: window gather,
voxel noise, transforms, alpha augmentation) and of its parts, in tf.function with and without XLA, one thread.

`renormalize`: one raw sample of the shipped l2lflow-ds2-electron v3 at the 1 000 held-out energies (layer flows and
energy flow as in L2LFlow.sample_showers, stopped before the cut) post-processed two ways: calozoo's
renormalize_layers (cut at 15.15 keV, then rescale the rest of each layer to the energy flow's E_k) and the
reference's renormalize (ConvL2LFlow src/generator.py: sort each layer, rescale by E_k over the reverse cumulative
sum, keep the largest voxels whose rescaled values reach the cut, zero the rest), written as two CaloChallenge files.
"""

import argparse
import json
import time

import h5py
import numpy as np
import tensorflow as tf

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

from calozoo.registry import create, load  # noqa: E402
from calozoo.training.l2lflow import LayerData  # noqa: E402
from calozoo.training.settings import fit_validation_rows  # noqa: E402


def timed(fn, args_list, warmup=2):
    for args in args_list[:warmup]:
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    started = time.perf_counter()
    for args in args_list[warmup:]:
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    return round((time.perf_counter() - started) / (len(args_list) - warmup), 4)


def inputs(args):
    model = create("l2lflow-ds2-electron", variant="compact")
    with h5py.File(f"{args.work}/ds2_train.h5") as f:
        energies, showers = f["incident_energies"][:], f["showers"][:]
    fit, _ = fit_validation_rows(len(energies), 0.1, 0)
    model.set_layer_maxima(showers[fit])
    result = {}
    for augment in (True, False):
        train = LayerData(model, showers[fit], energies[fit], augment_alpha=augment)
        rows, layers = train.arrays("layer_flow")
        order = np.random.default_rng(0).permutation(len(rows))
        batches = [(rows[order[i * 512:(i + 1) * 512]], layers[order[i * 512:(i + 1) * 512]]) for i in range(12)]
        generator = tf.random.Generator.from_seed(1)
        for jit in (True, False):
            fn = tf.function(lambda r, layer: train.inputs("layer_flow", generator.make_seeds(1)[:, 0], r, layer),
                             jit_compile=jit)
            result[f"inputs augment={augment} xla={jit}"] = timed(fn, batches)
    x = tf.random.uniform([512, 6, 9, 16], 0, 1e-3)
    seed = tf.constant([1, 2], tf.int64)
    index = tf.tile(tf.range(6)[None], [512, 1])
    parts = {"noisy_voxels": lambda: model.noisy_voxels(x, seed),
             "transform_voxels": lambda: model.transform_voxels(x, index),
             "stateless_normal": lambda: tf.random.stateless_normal(tf.shape(x), seed),
             "stateless_uniform": lambda: tf.random.stateless_uniform(tf.shape(x), seed),
             "10 ** x": lambda: 10.0 ** x}
    for name, f in parts.items():
        for jit in (True, False):
            result[f"{name} xla={jit}"] = timed(tf.function(f, jit_compile=jit), [()] * 12)
    print(json.dumps(result, indent=1))


def renormalize(args):
    model = load("l2lflow-ds2-electron")
    cut = model.config.cut_gev
    with h5py.File(f"{args.work}/ds2_heldout.h5") as f:
        energies_mev = f["incident_energies"][:]

    @tf.function
    def raw(incident_energies, seed):
        incident = tf.cast(incident_energies, model.dtype) / 1e3
        energy_seed, layer_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        layer_energies = model.sample_layer_energies(incident, energy_seed)
        n = tf.shape(incident)[0]
        previous = tf.zeros(tf.stack([n, max(model.config.previous_layers, 1), model.n_r, model.n_alpha]),
                            model.dtype)
        transformed = model._sample_shared(previous, layer_energies, incident, layer_seed)
        return model.inverse_transform_voxels(transformed, tf.range(model.n_layers)[None, :]), layer_energies

    voxels, layer_energies = raw(tf.constant(energies_mev), tf.constant([args.seed, 0]))
    voxels, layer_energies = voxels.numpy().astype(np.float64), layer_energies.numpy().astype(np.float64)
    n = len(energies_mev)
    flat = voxels.reshape(n, model.n_layers, -1)
    # calozoo's renormalize_layers
    kept = np.where(flat < cut, 0.0, flat)
    total = kept.sum(-1, keepdims=True)
    calozoo_post = np.where(total <= 0, 0.0, kept * layer_energies[..., None] / np.where(total <= 0, 1.0, total))
    # the reference's renormalize
    order = np.argsort(flat, axis=-1)
    ascending = np.take_along_axis(flat, order, -1)
    reverse_cumsum = np.flip(np.cumsum(np.flip(ascending, -1), -1), -1)
    ratio = layer_energies[..., None] / reverse_cumsum
    first = np.where(ascending * ratio >= cut, np.arange(flat.shape[-1]), flat.shape[-1]).min(-1, keepdims=True)
    factor = np.take_along_axis(np.concatenate([ratio, np.zeros_like(ratio[..., :1])], -1), first, -1)
    keep = np.empty(flat.shape, bool)
    np.put_along_axis(keep, order, np.arange(flat.shape[-1]) >= first, -1)
    reference_post = np.where(keep, flat * factor, 0.0)
    for name, x in (("calozoo_post", calozoo_post), ("reference_post", reference_post)):
        showers = np.swapaxes(x.reshape(n, model.n_layers, model.n_r, model.n_alpha), -2, -1).reshape(n, -1) * 1e3
        showers = showers.astype(np.float32)
        with h5py.File(f"{args.work}/v3_raw_{name}.h5", "w") as f:
            f.create_dataset("incident_energies", data=energies_mev)
            f.create_dataset("showers", data=showers)
        layer_sums = x.sum(-1)
        print(name, json.dumps({"hits_per_shower": float((showers > 0).sum(1).mean()),
                                "empty_layers_per_shower": float((layer_sums == 0).sum(1).mean()),
                                "sub_cut_layers_per_shower":
                                    float(((layer_sums > 0) & (layer_sums < cut)).sum(1).mean()),
                                "etot_einc_mean": float((showers.sum(1) / energies_mev.ravel()).mean())}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["inputs", "renormalize"])
    parser.add_argument("--work", default="/tmp/l2lwork")
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    {"inputs": inputs, "renormalize": renormalize}[args.check](args)


if __name__ == "__main__":
    main()
