"""CaloFlow models (DS1 and CaloGAN) from the reference PyTorch code's checkpoints (state_dicts as numpy arrays).

The DS1 reference (Ian-Pang/caloflow-for-calochallenge, `run_gamma_2023.py` / `run_piplus_2023.py`) saves Flow-II
(teacher `model_checkpoint.pt` / `weight_checkpoint.pt`, student `student.pt` / `student_weights.pt`) and Flow-I
(`rec_energy_flow/gamma.pt` or `piplus.pt`) in separate files, each a dict whose `model_state_dict` is an nflows
`Flow`. The CaloGAN reference (Ian-Pang/AD_with_CF `run.py`, docs/calogan.md) saves the same flows under
`saved_checkpoints/Flow_II/<particle>.pt` (teacher; `<particle>_full.pt` with the optimizer),
`<particle>_student.pt` (`<particle>_full_student.pt`) and `saved_checkpoints/Flow_I/<particle>.pt`, with the
same keys: only the geometry (504 voxels, 3 layers) and the constants of the registered config differ. The sizes
are read from the tensor shapes; the mapping itself is `calozoo.bijectors.nflows_state_dict`.
"""

from __future__ import annotations

from calozoo.bijectors.nflows_state_dict import NflowsFlowLayout, assign_flow, flow_layout
from calozoo.data.geometry import CALOGAN_DATASETS, load_geometry
from calozoo.errors import CheckpointError
from calozoo.models.caloflow import CaloFlow, CaloFlowConfig

__all__ = ["REFERENCE_REPOSITORY", "REFERENCE_COMMIT", "CALOGAN_REFERENCE_REPOSITORY", "CALOGAN_REFERENCE_COMMIT",
           "DS1_DATASETS", "IMPORTABLE_DATASETS", "caloflow_config_from_checkpoints", "caloflow_from_checkpoints"]

REFERENCE_REPOSITORY = "Ian-Pang/caloflow-for-calochallenge"
REFERENCE_COMMIT = "f29cd7108b16776177f89aca81073a630d358081"
CALOGAN_REFERENCE_REPOSITORY = "Ian-Pang/AD_with_CF"
CALOGAN_REFERENCE_COMMIT = "6aec2569d1c14494bedfb8c0954a0c2260c58f50"
DS1_DATASETS = ("1-photons", "1-pions")
IMPORTABLE_DATASETS = DS1_DATASETS + CALOGAN_DATASETS


def _check_shower_flow(layout: NflowsFlowLayout, dataset: str) -> None:
    geometry = load_geometry(dataset)
    if (layout.features, layout.context) != (geometry.n_voxels, 1 + geometry.n_layers):
        raise CheckpointError(f"the Flow-II checkpoint has {layout.features} features and {layout.context} conditions; "
                              f"dataset {dataset} needs {geometry.n_voxels} voxels and {1 + geometry.n_layers}.")
    if layout.num_permutations != layout.num_blocks - 1:
        raise CheckpointError(f"the Flow-II checkpoint has {layout.num_blocks} blocks and {layout.num_permutations} "
                              "permutations; CaloFlow's Flow-II has one permutation fewer than blocks.")


def _check_energy_flow(layout: NflowsFlowLayout, dataset: str, num_bins: int) -> None:
    n_layers = load_geometry(dataset).n_layers
    if (layout.kind, layout.features, layout.context) != ("maf", n_layers, 1):
        raise CheckpointError(f"the Flow-I checkpoint is a {layout.kind.upper()} with {layout.features} features and "
                              f"{layout.context} conditions; dataset {dataset} needs a MAF with {n_layers} and 1 "
                              "(is it the Flow-II checkpoint?).")
    if layout.num_permutations != layout.num_blocks:
        raise CheckpointError(f"the Flow-I checkpoint has {layout.num_blocks} blocks and {layout.num_permutations} "
                              "permutations; CaloFlow's Flow-I has a permutation after every block.")
    if layout.num_bins != num_bins:
        raise CheckpointError(f"Flow-I has {layout.num_bins}-bin splines and Flow-II {num_bins}-bin ones; calozoo's "
                              "CaloFlow uses one bin count for both.")


def caloflow_config_from_checkpoints(base: dict, shower_state: dict, energy_state: dict) -> tuple[dict, dict]:
    """The CaloFlow config that fits both state_dicts: `base` (the registered config, with any user changes) with
    the sizes read from the tensor shapes.

    Returns:
        (config dict, the inferred entries). Raises CheckpointError where the shapes fit no CaloFlow of the dataset,
        or where `base` contradicts them.
    """
    dataset = base.get("dataset", CaloFlowConfig.dataset)
    if dataset not in IMPORTABLE_DATASETS:
        raise CheckpointError(f"only the CaloFlow DS1 and CaloGAN models ({', '.join(IMPORTABLE_DATASETS)}) have a "
                              f"reference checkpoint format calozoo imports; got dataset {dataset}.")
    shower, energy = flow_layout(shower_state), flow_layout(energy_state)
    _check_shower_flow(shower, dataset)
    _check_energy_flow(energy, dataset, shower.num_bins)
    inferred = {"role": "teacher" if shower.kind == "maf" else "student", "hidden": shower.hidden,
                "num_blocks": shower.num_blocks, "made_hidden_blocks": shower.made_hidden_blocks,
                "num_bins": shower.num_bins, "energy_hidden": energy.hidden, "energy_blocks": energy.num_blocks,
                "energy_made_hidden_blocks": energy.made_hidden_blocks}
    return {**base, **inferred}, inferred


def caloflow_from_checkpoints(config, shower_state: dict, energy_state: dict) -> CaloFlow:
    """A CaloFlow (`CaloFlowConfig` or dict) with Flow-II and Flow-I copied from the reference state_dicts."""
    config = CaloFlowConfig.from_dict(config) if isinstance(config, dict) else config
    model = CaloFlow(config)
    assign_flow(model.shower_flow, shower_state)
    assign_flow(model.energy_flow, energy_state)
    return model
