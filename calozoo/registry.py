"""The model registry: flat names from zoo_configs/*.yaml, families that build and train them, artifacts.

    >>> import calozoo as zoo
    >>> zoo.list_models("caloflow-ds1-photon-*")
    ['caloflow-ds1-photon-student', 'caloflow-ds1-photon-teacher']
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from calozoo.artifacts import artifact_versions, load_weights, read_artifact_config
from calozoo.errors import MissingWeightsError, UnknownModelError

__all__ = ["Family", "ModelEntry", "REGISTRY", "register_family", "list_models", "get_entry", "create", "load",
           "find_artifact", "config_dir", "artifact_roots"]


@dataclasses.dataclass(frozen=True)
class Family:
    """How to build (and train) the models of one family from a config dict."""

    name: str
    build: Callable[[dict], object]
    train: Callable | None = None


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered name: its family, the paper configuration and the training recipe."""

    name: str
    family: str
    description: str
    config: dict
    training: dict
    extra: dict
    source: Path


def _repository_root() -> Path:
    return Path(__file__).resolve().parents[1]


def config_dir() -> Path:
    """Where the YAML configs are: $CALOZOO_HOME/zoo_configs, else the repository's zoo_configs/."""
    home = os.environ.get("CALOZOO_HOME")
    return Path(home) / "zoo_configs" if home else _repository_root() / "zoo_configs"


def artifact_roots() -> list[Path]:
    """Where artifacts are looked for, in order: $CALOZOO_ARTIFACTS, $CALOZOO_HOME/artifacts, the repository's
    artifacts/, ~/.cache/calozoo/artifacts."""
    roots = []
    if os.environ.get("CALOZOO_ARTIFACTS"):
        roots.append(Path(os.environ["CALOZOO_ARTIFACTS"]))
    if os.environ.get("CALOZOO_HOME"):
        roots.append(Path(os.environ["CALOZOO_HOME"]) / "artifacts")
    roots += [_repository_root() / "artifacts", Path.home() / ".cache" / "calozoo" / "artifacts"]
    return roots


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class Registry:
    """All families and model names; the names are read from the YAML files once, on first use."""

    def __init__(self):
        self.families: dict[str, Family] = {}
        self._entries: dict[str, ModelEntry] | None = None

    def register_family(self, family: Family) -> None:
        if family.name in self.families:
            raise ValueError(f"Family '{family.name}' is registered twice.")
        self.families[family.name] = family

    @property
    def entries(self) -> dict[str, ModelEntry]:
        if self._entries is None:
            self._entries = self._read_configs(config_dir())
        return self._entries

    def _read_configs(self, directory: Path) -> dict[str, ModelEntry]:
        entries = {}
        for path in sorted(directory.glob("*.yaml")):
            raw = yaml.safe_load(path.read_text()) or {}
            name = path.stem
            if raw.get("family") not in self.families:
                raise ValueError(f"{path}: unknown family {raw.get('family')!r}; known: {sorted(self.families)}.")
            extra = {k: v for k, v in raw.items() if k not in ("family", "description", "config", "training")}
            entries[name] = ModelEntry(name, raw["family"], raw.get("description", ""), raw.get("config", {}),
                                       raw.get("training", {}), extra, path)
        return entries

    def reload(self) -> None:
        self._entries = None


REGISTRY = Registry()


def register_family(name: str, build: Callable, train: Callable | None = None) -> None:
    """Adds a family; its models are the YAML files whose `family:` is `name`."""
    REGISTRY.register_family(Family(name, build, train))


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching an fnmatch pattern, in natural order."""
    return sorted((n for n in REGISTRY.entries if fnmatch.fnmatch(n, pattern)), key=_natural_key)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of `name`; an unknown name's error lists the closest ones."""
    try:
        return REGISTRY.entries[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(REGISTRY.entries), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownModelError(f"Unknown model '{name}'.{hint} Run `calozoo list` to see all models.") from None


def create(name: str, pretrained: bool = False, **overrides):
    """The model `name` in its paper configuration (randomly initialised), or with `pretrained=True` the
    shipped artifact (same as `load`). Keyword overrides change config entries (e.g. `hidden=64`)."""
    if pretrained:
        return load(name, **overrides)
    entry = get_entry(name)
    return REGISTRY.families[entry.family].build({**entry.config, **overrides})


def find_artifact(name: str, version: int | None = None) -> Path:
    """The directory of an artifact of `name` (the newest version unless `version` is given)."""
    get_entry(name)
    looked = []
    for root in artifact_roots():
        versions = artifact_versions(root / name)
        looked.append(str(root / name))
        if version is None and versions:
            return root / name / f"v{versions[-1]}"
        if version is not None and version in versions:
            return root / name / f"v{version}"
    wanted = f"version {version} of " if version is not None else ""
    raise MissingWeightsError(
        f"No trained weights for {wanted}'{name}'; looked in: {', '.join(looked)}. Train them with "
        f"`calozoo train {name} --data FILE`, or use `zoo.create('{name}')` for a randomly initialised model."
    )


def load(name: str, version: int | None = None, dtype: str | None = None):
    """A ready generator: the artifact's configuration (which may be a compact one) with its trained weights.

    `dtype` ('float32' or 'float64') changes the compute precision (the weights are cast).
    """
    directory = find_artifact(name, version)
    stored = read_artifact_config(directory)
    config = dict(stored["config"])
    if dtype is not None:
        config["dtype"] = dtype
    model = REGISTRY.families[stored["family"]].build(config)
    load_weights(model, directory / "weights.npz")
    model.artifact_dir = directory
    return model
