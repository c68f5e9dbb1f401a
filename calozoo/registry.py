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

__all__ = ["Family", "ModelEntry", "Variant", "REGISTRY", "register_family", "list_models", "get_entry", "create",
           "load", "find_artifact", "config_dir", "artifact_roots", "user_home", "artifact_versions_of",
           "ArtifactVersion", "split_origin", "split_spec", "resolve_artifact"]


@dataclasses.dataclass(frozen=True)
class Family:
    """How to build (and train) the models of one family from a config dict."""

    name: str
    build: Callable[[dict], object]
    train: Callable | None = None


@dataclasses.dataclass(frozen=True)
class Variant:
    """A named recipe for a registered model (the YAML's `variants:`), e.g. the compact size a shipped artifact
    was trained at: config entries that differ from the paper's, dotted-path training overrides (as
    `calozoo train --train-set`), and optionally the epochs of every part and the held-out fraction."""

    name: str
    description: str = ""
    config: dict = dataclasses.field(default_factory=dict)
    training: dict = dataclasses.field(default_factory=dict)
    epochs: int | None = None
    heldout_fraction: float | None = None

    @classmethod
    def from_yaml(cls, name: str, raw: dict, source: Path) -> Variant:
        unknown = sorted(set(raw) - {"description", "config", "training", "epochs", "heldout_fraction"})
        if unknown:
            raise ValueError(f"{source}: variant '{name}' has unknown keys {unknown}.")
        return cls(name, raw.get("description", ""), dict(raw.get("config") or {}), dict(raw.get("training") or {}),
                   raw.get("epochs"), raw.get("heldout_fraction"))


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered name: its family, the paper configuration, the training recipe and its named variants."""

    name: str
    family: str
    description: str
    config: dict
    training: dict
    extra: dict
    source: Path
    variants: dict = dataclasses.field(default_factory=dict)

    def variant(self, name: str) -> Variant:
        """The variant `name`; an unknown one's error lists those this model has."""
        try:
            return self.variants[name]
        except KeyError:
            known = ", ".join(sorted(self.variants)) or "none"
            raise UnknownModelError(f"'{self.name}' has no variant '{name}'; its variants: {known} "
                                    f"(see `calozoo info {self.name}`).") from None


SHIPPED, USER, PATH = "shipped", "user", "path"


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def _repository_root() -> Path:
    """The folder that holds the shipped `zoo_configs/` and `artifacts/`: the checkout's top level, or in an installed
    wheel the package itself (where they are `calozoo/_zoo_configs` and `calozoo/_artifacts`)."""
    package = _package_dir()
    return package if (package / "_zoo_configs").is_dir() else package.parent


def _shipped(kind: str) -> Path:
    root = _repository_root()
    return root / (f"_{kind}" if root == _package_dir() else kind)


def config_dir() -> Path:
    """Where the YAML configs are: $CALOZOO_CONFIGS, else the shipped zoo_configs/ (checkout or wheel)."""
    return Path(os.environ["CALOZOO_CONFIGS"]) if os.environ.get("CALOZOO_CONFIGS") else _shipped("zoo_configs")


def user_home() -> Path:
    """The user store: $CALOZOO_HOME, else $XDG_DATA_HOME/calozoo, else ~/.local/share/calozoo."""
    if os.environ.get("CALOZOO_HOME"):
        return Path(os.environ["CALOZOO_HOME"]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "calozoo"


def artifact_roots() -> dict[str, Path]:
    """Where artifacts are, by origin: 'shipped' (the package's artifacts/, read-only) and 'user' (what
    `calozoo train` writes: $CALOZOO_ARTIFACTS, else <user store>/artifacts)."""
    user = Path(os.environ["CALOZOO_ARTIFACTS"]) if os.environ.get("CALOZOO_ARTIFACTS") else user_home() / "artifacts"
    return {SHIPPED: _shipped("artifacts"), USER: user}


@dataclasses.dataclass(frozen=True)
class ArtifactVersion:
    """One stored version of a model: its number, where it comes from ('shipped' or 'user') and its directory."""

    name: str
    version: int
    origin: str
    path: Path


def artifact_versions_of(name: str) -> list[ArtifactVersion]:
    """Every stored version of `name`, shipped and user, ordered by version (shipped first on a tie)."""
    found = [ArtifactVersion(name, v, origin, root / name / f"v{v}")
             for origin, root in artifact_roots().items() for v in artifact_versions(root / name)]
    return sorted(found, key=lambda a: (a.version, a.origin != SHIPPED))


def split_spec(name: str) -> tuple[str, str | None, int | None]:
    """'NAME[@user|@shipped][:N]' -> (NAME, origin or None, version N or None); e.g. 'NAME@user:5' ->
    ('NAME', 'user', 5)."""
    rest, colon, number = name.partition(":")
    if colon and not (number.isdigit() and int(number) >= 1):
        raise UnknownModelError(f"'{name}': after ':' write a version number (e.g. {rest}:2); got '{number}'.")
    base, sep, origin = rest.partition("@")
    if sep and origin not in (SHIPPED, USER):
        raise UnknownModelError(f"'{name}': after '@' write 'user' or 'shipped' (e.g. {base}@user); got '{origin}'.")
    return base, origin if sep else None, int(number) if colon else None


def split_origin(name: str) -> tuple[str, str | None]:
    """'NAME@user' -> ('NAME', 'user'); 'NAME@shipped' -> ('NAME', 'shipped'); 'NAME' -> ('NAME', None); a ':N'
    version suffix is dropped (see `split_spec`)."""
    base, origin, _ = split_spec(name)
    return base, origin


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class Registry:
    """All families and model names; the names are read from the YAML files once, on first use."""

    def __init__(self):
        self._families: dict[str, Family] = {}
        self._builtins_registered = False
        self._entries: dict[str, ModelEntry] | None = None

    @property
    def families(self) -> dict[str, Family]:
        """The registered families: the built-in ones (builders from calozoo.models, trainers from
        calozoo.training, imported here on first use) and any added with `register_family`."""
        if not self._builtins_registered:
            from calozoo.models import BUILDERS
            from calozoo.training import TRAINERS

            self._builtins_registered = True
            for name, build in BUILDERS.items():
                self.register_family(Family(name, build, TRAINERS.get(name)))
        return self._families

    def register_family(self, family: Family) -> None:
        if family.name in self._families:
            raise ValueError(f"Family '{family.name}' is registered twice.")
        self._families[family.name] = family

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
            extra = {k: v for k, v in raw.items()
                     if k not in ("family", "description", "config", "training", "variants")}
            variants = {key: Variant.from_yaml(key, value or {}, path)
                        for key, value in (raw.get("variants") or {}).items()}
            entries[name] = ModelEntry(name, raw["family"], raw.get("description", ""), raw.get("config", {}),
                                       raw.get("training", {}), extra, path, variants)
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


def create(name: str, pretrained: bool = False, variant: str | None = None, **overrides):
    """The model `name` in its paper configuration (randomly initialised), or with `pretrained=True` the
    shipped artifact (same as `load`). `variant` starts from a named variant's configuration (e.g. "compact", the
    size of the shipped artifact); keyword overrides change config entries on top (e.g. `hidden=64`)."""
    if pretrained:
        return load(name, **overrides)
    entry = get_entry(name)
    changes = entry.variant(variant).config if variant is not None else {}
    return REGISTRY.families[entry.family].build({**entry.config, **changes, **overrides})


def _missing(name: str, version: int | None, origin: str | None) -> MissingWeightsError:
    wanted = f"version {version} of " if version is not None else ""
    where = ", ".join(f"{o}: {root / name}" for o, root in artifact_roots().items() if origin in (None, o))
    return MissingWeightsError(
        f"No trained weights for {wanted}'{name}'{f' in the {origin} store' if origin else ''}; looked in {where}. "
        f"Train them with `calozoo train {name} --data FILE`, or use `zoo.create('{name}')` for a randomly "
        f"initialised model.")


def resolve_artifact(name: str, version: int | None = None) -> ArtifactVersion:
    """Which stored version `name` means. The rule (a user version never silently hides a shipped one):

    - `NAME`: the newest *shipped* version; only a model with nothing shipped falls back to the newest user version.
    - `NAME@user` / `NAME@shipped`: the newest version of that store.
    - `version=N`: version N, shipped if that store has one; the stores number their versions independently, so
      `NAME@user` with `version=N` names the user one. `NAME@user:N` (or `NAME:N`) says the same in the name.
    """
    base, origin, named_version = split_spec(name)
    if named_version is not None and version is not None and named_version != version:
        raise UnknownModelError(f"'{name}' names version {named_version} but version={version} was given as well.")
    version = named_version if version is None else version
    get_entry(base)
    candidates = [a for a in artifact_versions_of(base) if origin in (None, a.origin)]
    if version is not None:
        candidates = [a for a in candidates if a.version == version]
        candidates.sort(key=lambda a: a.origin != SHIPPED)
        if candidates:
            return candidates[0]
        raise _missing(base, version, origin)
    shipped = [a for a in candidates if a.origin == SHIPPED]
    chosen = (shipped or candidates)[-1:] if origin is None else candidates[-1:]
    if not chosen:
        raise _missing(base, None, origin)
    return chosen[0]


def find_artifact(name: str, version: int | None = None) -> Path:
    """The directory of an artifact of `name` (see `resolve_artifact` for which version that is)."""
    return resolve_artifact(name, version).path


def _is_artifact_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.yaml").is_file() and (path / "weights.npz").is_file()


def _as_path(name) -> Path | None:
    """The artifact directory `name` points to, None for a registered name; a path without an artifact raises."""
    if isinstance(name, os.PathLike) or "/" in str(name) or os.sep in str(name) or _is_artifact_dir(Path(str(name))):
        path = Path(name).expanduser()
        if not _is_artifact_dir(path):
            raise MissingWeightsError(f"{path}: not an artifact directory (it needs config.yaml and weights.npz).")
        return path
    return None


def load(name, version: int | None = None, dtype: str | None = None):
    """A ready generator: the artifact's configuration (which may be a compact one) with its trained weights.

    `name` is a registered name (the newest shipped version; `NAME@user` for the newest of your own trainings,
    see `resolve_artifact`) or the path of an artifact directory (`zoo.load("runs/out/NAME/v3")`).
    `dtype` ('float32' or 'float64') changes the compute precision (the weights are cast).
    Sets the model's `artifact_dir` and `artifact_origin` ('shipped', 'user' or 'path'), the attributes
    `ShowerGenerator` declares (None on a model built in memory), to say what was loaded.
    """
    path = _as_path(name)
    if path is None:
        found = resolve_artifact(str(name), version)
        directory, origin = found.path, found.origin
    else:
        directory, origin = path.resolve(), PATH
    stored = read_artifact_config(directory)
    config = dict(stored["config"])
    if dtype is not None:
        config["dtype"] = dtype
    model = REGISTRY.families[stored["family"]].build(config)
    load_weights(model, directory / "weights.npz")
    model.artifact_dir = directory
    model.artifact_origin = origin
    return model
