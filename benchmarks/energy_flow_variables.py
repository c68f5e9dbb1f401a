"""What an energy flow's variables do to E_tot/E_inc and the layer energies, with the layer flows left out.

Trains only the energy flow (Flow-1) of a registered iCaloFlow or L2LFlows model at its compact recipe, once per
`energy_variables` choice, on the training part of a split, then draws layer energies at the held-out showers'
incident energies and measures the separation powers of E_tot/E_inc and of each layer's energy against the held-out
GEANT4 showers (the histograms of `calozoo evaluate -m hist`; the other features need the layer flows and are left
out). Every layer flow is conditioned on the data's layer energies in training, so what is measured here is what a
full model with this energy flow generates for these two features.

    python benchmarks/energy_flow_variables.py --train ds2_train_part.h5 --heldout ds2_heldout.h5 \\
        [--model icaloflow-ds2-electron-teacher] [--variables layers,fractions,shares] \\
        [-o benchmarks/energy_flow_variables.json]

(the two files from `calozoo data split ds2_electrons_g4_train.h5 --validation-fraction 0.25 --seed 0`)
"""

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from calozoo import registry
from calozoo.data.files import read_showers
from calozoo.data.geometry import load_geometry
from calozoo.evaluation.separation import separation_powers
from calozoo.workflow.recipe import with_training_overrides

SEED = 12345


def compact_recipe(name: str) -> dict:
    """The registered model's training recipe with its compact variant's overrides."""
    entry = registry.get_entry(name)
    return with_training_overrides(entry.training, entry.variant("compact").training)


def train_energy_flow(name: str, variables: str, showers, energies) -> tuple:
    """(model, wall seconds): the compact model with `energy_variables=variables`, only its energy flow trained."""
    model = registry.create(name, variant="compact", energy_variables=variables)
    family = registry.REGISTRY.families[registry.get_entry(name).family]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        family.train(model, showers, energies, workdir, settings=compact_recipe(name), parts=("energy_flow",),
                     seed=0, progress=False)
    return model, time.perf_counter() - started


def layer_energies_mev(model, family: str, incident_mev: np.ndarray) -> np.ndarray:
    """The energy flow's layer energies (N, 45) MeV at E_inc (N, 1) MeV (L2LFlows works in GeV, with its veto)."""
    seed = tf.constant([SEED, 0], tf.int32)
    if family == "l2lflow":
        return model.sample_layer_energies(tf.constant(incident_mev / 1e3, model.dtype), seed).numpy() * 1e3
    return model.sample_layer_energies(tf.constant(incident_mev, model.dtype), seed).numpy()


def layer_feature_powers(layers_mev, incident_mev, reference_showers, reference_incident_mev, dataset: str) -> dict:
    """Separation powers of E_tot/E_inc and e_layer_k: each layer's energy put in one voxel (only sums count)."""
    geometry = load_geometry(dataset)
    size, n_layers = geometry.layer_sizes[0], len(geometry.layer_sizes)
    generated = np.zeros((len(layers_mev), n_layers * size), np.float32)
    generated[:, ::size] = layers_mev
    reference = np.zeros((len(reference_showers), n_layers * size), np.float32)
    reference[:, ::size] = reference_showers.reshape(len(reference_showers), n_layers, size).sum(-1)
    powers = separation_powers(generated, incident_mev, reference, reference_incident_mev, geometry)
    e_layer = [powers[f"e_layer_{k}"] for k in range(n_layers)]
    return {"etot_einc": round(powers["etot_einc"], 4), "e_layer_mean": round(float(np.mean(e_layer)), 4),
            "e_layer_last5": [round(p, 4) for p in e_layer[-5:]]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="training part of the split (MeV, CaloChallenge)")
    parser.add_argument("--heldout", required=True, help="held-out part of the split")
    parser.add_argument("--model", default="icaloflow-ds2-electron-teacher")
    parser.add_argument("--variables", default="layers,fractions,shares")
    parser.add_argument("-o", "--output", default="benchmarks/energy_flow_variables.json")
    args = parser.parse_args()
    dataset = registry.create(args.model, variant="compact").dataset
    n_voxels = load_geometry(dataset).n_voxels
    energies, showers = read_showers(args.train, n_voxels=n_voxels)
    held_energies, held_showers = read_showers(args.heldout, n_voxels=n_voxels)
    family = registry.get_entry(args.model).family
    rows = {}
    for variables in args.variables.split(","):
        model, wall = train_energy_flow(args.model, variables, showers, energies)
        layers = layer_energies_mev(model, family, held_energies)
        rows[variables] = {"train_seconds": round(wall, 1),
                           **layer_feature_powers(layers, held_energies, held_showers, held_energies, dataset)}
        print(variables, json.dumps(rows[variables]), flush=True)
    n = len(held_showers)  # the floor: as many training showers against the held-out ones
    floor_layers = showers[:n].reshape(n, -1, load_geometry(dataset).layer_sizes[0]).sum(-1)
    rows["GEANT4 floor"] = layer_feature_powers(floor_layers, energies[:n], held_showers, held_energies, dataset)
    print("GEANT4 floor", json.dumps(rows["GEANT4 floor"]))
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {}
    results[args.model] = {"date": datetime.date.today().isoformat(), "train": Path(args.train).name,
                           "heldout": Path(args.heldout).name,
                           "n_heldout": len(held_showers), "generation_seed": SEED, "rows": rows}
    output.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
