"""The CaloFlow-on-CaloGAN evaluation of the trained `caloflow-calogan-<particle>-<role>` artifacts on the held-out
rows of their training files (`calozoo evaluate-calogan`): the seed classifier, the test NLL and the memorisation check
of calozoo.evaluation.calogan, per particle and role, with a particle cross-check and a markdown report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from calozoo.data.files import read_showers
from calozoo.errors import CalozooError
from calozoo.evaluation.calogan import (
    SEED_FAST_SETTINGS,
    SEED_SETTINGS,
    nearest_neighbours,
    particle_crosscheck,
    plot_nearest_neighbours,
    seed_classifier,
    seed_table,
    test_nll,
)
from calozoo.registry import load
from calozoo.workflow.recipe import heldout_rows

__all__ = ["heldout_split", "evaluate_calogan_models"]


def heldout_split(model, data_path):
    """((train energies, train showers), (held-out energies, held-out showers)) of a trained artifact's data file,
    split as its training was (seed and fraction from the artifact's metadata)."""
    if model.artifact_dir is None:
        raise CalozooError("heldout_split needs a trained artifact (calozoo.load): the held-out rows are those its "
                           "training set aside; this model was built in memory.")
    metadata = json.loads((Path(model.artifact_dir) / "metadata.json").read_text())["training_data"]
    energies, showers = read_showers(data_path, n_voxels=model.n_voxels)
    train, held = heldout_rows(len(energies), metadata["heldout_fraction"], metadata["split_seed"])
    return (energies[train], showers[train]), (energies[held], showers[held])


def _evaluate_particle(particle: str, data_path, roles, n_showers: int, n_nll: int, settings, seed: int,
                       workdir: Path | None) -> tuple[dict, dict]:
    """Seed classifier, NLL and memorisation check of each role of one particle; also returns the generated
    showers per role (for the cross-check)."""
    dataset = f"calogan-{particle}"
    results, generated = {}, {}
    split = None
    for role in roles:
        model = load(f"caloflow-calogan-{particle}-{role}")
        split = split or heldout_split(model, data_path)
        (train_e, train_s), (held_e, held_s) = split
        n = min(n_showers, len(held_e))
        energies, reference = held_e[:n], held_s[:n]
        showers = model.generate(energies, seed=seed + 1)
        generated[role] = (energies, showers)
        entry = {mode: seed_classifier((energies, showers), (energies, reference), mode == "normalised", dataset,
                                       settings, seed) for mode in ("unnormalised", "normalised")}
        entry["test_nll"] = test_nll(model, held_s[:n_nll], held_e[:n_nll], seed=seed)
        entry["n_nll"] = int(min(n_nll, len(held_e)))
        n_memory = min(len(train_e), 5 * n)
        entry["nearest_neighbours"] = nearest_neighbours(showers, train_s[:n_memory], reference)
        if workdir is not None:
            plot_nearest_neighbours(showers, train_s[:n_memory], entry["nearest_neighbours"]["nearest_generated"],
                                    workdir / f"nearest_{particle}_{role}.png", dataset)
        entry["nearest_neighbours"].pop("nearest_generated")
        results[role] = entry
    return results, {"reference": split[1], **generated}


def evaluate_calogan_models(data: dict, roles=("teacher", "student"), n_showers: int = 5000, n_nll: int = 1000,
                            fast: bool = True, seed: int = 0, output_dir=None) -> dict:
    """The seed's evaluation of the trained CaloGAN artifacts on the held-out rows of their training files.

    Args:
        data: {particle: file} for particles among eplus, gamma, piplus (the files the artifacts were trained on).
        roles: which of teacher / student to evaluate.
        n_showers: held-out showers per particle (and as many generated) for the classifiers.
        n_nll: held-out showers for the test-set NLL (the student's density is sequential: slow).
        fast: `SEED_FAST_SETTINGS` for the DNN (else the seed's `SEED_SETTINGS`).
        output_dir: if given, results.json, report.md and the nearest-neighbour plots are written there.
    Returns:
        {"table": {particle: {role: {...}}}, "crosscheck": {...}, "markdown": the report}.
    """
    settings = SEED_FAST_SETTINGS if fast else SEED_SETTINGS
    workdir = None
    if output_dir is not None:
        workdir = Path(output_dir)
        workdir.mkdir(parents=True, exist_ok=True)
    table, samples = {}, {}
    for particle, path in data.items():
        table[particle], samples[particle] = _evaluate_particle(particle, path, roles, n_showers, n_nll, settings,
                                                                seed, workdir)
    crosscheck = {}
    for other in ("piplus", "gamma"):
        if "eplus" in samples and other in samples:
            for role in roles:
                crosscheck[f"eplus_vs_{other}_{role}"] = particle_crosscheck(
                    samples["eplus"]["reference"], samples[other]["reference"], samples["eplus"][role],
                    samples[other][role], settings, seed=seed)
    report = _render(table, crosscheck, roles, settings)
    result = {"table": table, "crosscheck": crosscheck, "settings": dataclasses.asdict(settings), "markdown": report}
    if workdir is not None:
        (workdir / "results.json").write_text(json.dumps({k: v for k, v in result.items() if k != "markdown"},
                                                         indent=1))
        (workdir / "report.md").write_text(report)
    return result


def _render(table: dict, crosscheck: dict, roles, settings) -> str:
    lines = [f"# The seed's evaluation (classifier settings: {settings.name})", "",
             seed_table({p: {r: {m: v[m] for m in ("unnormalised", "normalised")} for r, v in per.items()}
                         for p, per in table.items()}, roles), "",
             "| particle | " + " | ".join(f"{r} test NLL" for r in roles) + " | "
             + " | ".join(f"{r} NN ratio (copies)" for r in roles) + " |",
             "|---|" + "---|" * (2 * len(roles))]
    for particle, per in table.items():
        nll = " | ".join(f"{per[r]['test_nll']:.3f}" for r in roles)
        memory = " | ".join(f"{per[r]['nearest_neighbours']['ratio']:.3f} "
                            f"({per[r]['nearest_neighbours']['exact_copies']})" for r in roles)
        lines.append(f"| {particle} | {nll} | {memory} |")
    if crosscheck:
        lines += ["", "| particle classifier | trained on | AUC on reference | AUC on generated |", "|---|---|---|---|"]
        for name, result in crosscheck.items():
            for trained_on, aucs in result.items():
                lines.append(f"| {name} | {trained_on.removeprefix('trained_on_')} | {aucs['auc_reference']:.3f} | "
                             f"{aucs['auc_generated']:.3f} |")
    return "\n".join(lines) + "\n"
