"""Golden fingerprints of the showers every shipped artifact generates, and the recorder that writes them.

`tests/test_shipped_artifacts.py` loads each model as users do (`calozoo.load(NAME)`, the newest shipped version),
generates a few showers with a fixed seed and compares a compact fingerprint of them with `golden_showers.json`.
After adding or retraining a shipped artifact, (re)record its entry with

    python -m tests.golden_showers NAME [NAME ...]     # e.g. icaloflow-ds3-electron-teacher
    python -m tests.golden_showers --all               # every registered name with a shipped artifact

run from the repository root; it writes the entry of the version `load(NAME)` resolves to and keeps the others.
Recording changes what the test accepts: record only a model you meant to change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

__all__ = ["GOLDEN_FILE", "SEED", "INCIDENT_ENERGIES_MEV", "HIT_THRESHOLD_MEV", "TOP_VOXELS", "fingerprint",
           "shipped_names", "generate_fingerprint", "read_golden", "record"]

GOLDEN_FILE = Path(__file__).resolve().parent / "golden_showers.json"
SEED = 3
# One low and one high incident energy, inside the range of every detector (DS1 uses powers of two).
INCIDENT_ENERGIES_MEV = (2048.0, 65536.0)
HIT_THRESHOLD_MEV = 1.5e-2  # a hit: a voxel above 15 keV
TOP_VOXELS = 3


def fingerprint(showers: np.ndarray) -> list[dict]:
    """Per shower: total energy (MeV), hits above 15 keV, the largest voxel values (MeV, descending), the sum of the
    squared voxel energies (MeV^2, moved by any voxel that changes) and the energy-weighted mean voxel index
    (where in the flattened shower the energy sits)."""
    showers = np.asarray(showers, np.float64)
    index = np.arange(showers.shape[1])
    result = []
    for shower in showers:
        total = float(shower.sum())
        result.append({
            "energy_mev": total,
            "hits": int((shower > HIT_THRESHOLD_MEV).sum()),
            "top_voxels_mev": [float(v) for v in np.sort(shower)[::-1][:TOP_VOXELS]],
            "sum_squares_mev2": float(np.sum(shower**2)),
            "centroid_voxel": float((shower * index).sum() / total) if total > 0 else 0.0,
        })
    return result


def shipped_names() -> list[str]:
    """Every registered name that has at least one shipped artifact."""
    from calozoo import registry

    return [name for name in registry.list_models()
            if any(a.origin == registry.SHIPPED for a in registry.artifact_versions_of(name))]


def generate_fingerprint(name: str) -> tuple[int, list[dict]]:
    """(version, fingerprint) of the showers that `calozoo.load(name)` generates for the golden inputs."""
    import calozoo

    model = calozoo.load(name)
    showers = model.generate(np.array(INCIDENT_ENERGIES_MEV), seed=SEED, batch_size=len(INCIDENT_ENERGIES_MEV))
    version = int(Path(model.artifact_dir).name[1:])
    return version, fingerprint(showers)


def read_golden() -> dict:
    """The recorded entries, keyed 'NAME/vN'."""
    return json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.is_file() else {}


def record(names) -> dict:
    """Generates and stores the golden entry of each name (the version `load(name)` resolves to)."""
    golden = read_golden()
    for name in names:
        version, showers = generate_fingerprint(name)
        golden[f"{name}/v{version}"] = {"name": name, "version": version, "seed": SEED,
                                        "batch_size": len(INCIDENT_ENERGIES_MEV),
                                        "incident_energies_mev": list(INCIDENT_ENERGIES_MEV), "showers": showers}
        staging = GOLDEN_FILE.with_suffix(".json.tmp")
        staging.write_text(json.dumps(dict(sorted(golden.items())), indent=1) + "\n")
        os.replace(staging, GOLDEN_FILE)
        print(f"recorded {name}/v{version}", flush=True)
    return golden


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden_showers", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="registered model names to (re)record")
    parser.add_argument("--all", action="store_true", help="every name with a shipped artifact")
    args = parser.parse_args(argv)
    if not args.names and not args.all:
        parser.error("give model names or --all")
    known = shipped_names()
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        print(f"error: no shipped artifact for {unknown}; names with one: {known}", file=sys.stderr)
        return 2
    record(known if args.all else args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
