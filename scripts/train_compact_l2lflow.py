"""Trains the compact convolutional L2LFlows shipped under artifacts/ (demonstrations, not the paper runs).

`recipe.train_to_artifact` holds out 20 % of the GEANT4 file (seed 0) for the model card's metrics; the rest
trains (a further 10 % of it selects each part's best epoch). One shared layer flow with a layer embedding
(`layer_flows=shared`) instead of the paper's 45 keeps the artifact small and the training to minutes.

    PYTHONPATH=. nice -n 10 python scripts/train_compact_l2lflow.py --dataset 3 --layer-epochs 3
    PYTHONPATH=. nice -n 10 python scripts/train_compact_l2lflow.py --dataset 2 --layer-epochs 1 --layer-batch 512
"""

from __future__ import annotations

import argparse
from pathlib import Path

import tensorflow as tf

from calozoo.workflow.recipe import train_to_artifact

DATA = {"2": "/work/shared/geant4/ds2_electrons_g4_train.h5", "3": "/work/shared/geant4/ds3_electrons_g4_train.h5"}
COMPACT = dict(layer_flows="shared", hidden=8, num_blocks=2, energy_hidden=32, energy_blocks=4)
SETTINGS = {
    "energy_flow": {"batch_size": 256, "epochs": 150, "jit_compile": True,
                    "schedule": {"name": "exponential", "lr": 2e-3, "final_factor": 0.05}},
    "layer_flows": {"batch_size": 256, "epochs": 3, "jit_compile": True,
                    "schedule": {"name": "onecycle", "max_lr": 2e-3, "div_factor": 10.0}},
}
LAYER_EPOCHS = {"2": 1, "3": 3}  # DS2 has 4x the showers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["2", "3"], required=True)
    parser.add_argument("--output-root", default=str(Path(__file__).resolve().parents[1] / "artifacts"))
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--layer-epochs", type=int, default=None)
    parser.add_argument("--layer-batch", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a tiny model and one epoch (a smoke run)")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")
    overrides, settings = dict(COMPACT), {k: dict(v) for k, v in SETTINGS.items()}
    settings["layer_flows"]["epochs"] = args.layer_epochs or LAYER_EPOCHS[args.dataset]
    settings["layer_flows"]["batch_size"] = args.layer_batch or settings["layer_flows"]["batch_size"]
    if args.quick:
        overrides.update(hidden=2, num_blocks=1, energy_hidden=4, energy_blocks=1)
        settings["energy_flow"]["epochs"] = settings["layer_flows"]["epochs"] = 1
    name = f"l2lflow-ds{args.dataset}-electron"
    training = {f"{part}.{key}": value for part, spec in settings.items() for key, value in spec.items()}
    path = train_to_artifact(name, DATA[args.dataset], overrides=overrides, training_overrides=training,
                             workdir=args.workdir or f"runs/{name}", output_root=args.output_root, progress=False)
    print(path)


if __name__ == "__main__":
    main()
