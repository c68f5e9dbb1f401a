"""Where the read-only reference material (`shared/`, beside the repository) is, for tests that use real showers."""

import os
from pathlib import Path

__all__ = ["SHARED", "DS2_GEANT4", "DS3_GEANT4"]


def _find_shared() -> Path:
    """$CALOZOO_SHARED, else a `shared/` folder beside the repository (or beside a parent), else /work/shared."""
    if os.environ.get("CALOZOO_SHARED"):
        return Path(os.environ["CALOZOO_SHARED"])
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "geant4").is_dir():
            return parent / "shared"
    return Path("/work/shared")


SHARED = _find_shared()
DS2_GEANT4 = SHARED / "geant4" / "ds2_electrons_g4_train.h5"
DS3_GEANT4 = SHARED / "geant4" / "ds3_electrons_g4_train.h5"
