"""What the frozen-dataclass configs of the flow families share: the dict round trip and the spline settings."""

from __future__ import annotations

import dataclasses

from calozoo.bijectors.rq_spline import SplineSettings

__all__ = ["FlowConfig"]


class FlowConfig:
    """Mixin for a frozen dataclass with `num_bins`, `tail_bound` and `min_bin` fields.

    `family_label` names the family in its errors; `datasets` are the datasets it models.
    """

    family_label = "model"
    datasets = ()

    def check_dataset_and_role(self) -> None:
        """ValueError unless `dataset` is one of the family's and `role` is 'teacher' or 'student'."""
        if self.dataset not in self.datasets:
            choices = " or ".join(f"'{d}'" for d in self.datasets)
            raise ValueError(f"{self.family_label} needs dataset {choices}; got '{self.dataset}'.")
        if self.role not in ("teacher", "student"):
            raise ValueError(f"`role` must be 'teacher' or 'student'; got '{self.role}'.")

    @classmethod
    def from_dict(cls, values: dict):
        """The config from a dict (a YAML `config:` block); unknown keys raise ValueError listing the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown {cls.family_label} setting(s) {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def spline(self) -> SplineSettings:
        """The RQS of every block: `num_bins` bins on [-tail_bound, tail_bound], minima `min_bin`."""
        return SplineSettings(self.num_bins, self.tail_bound, self.min_bin, self.min_bin, self.min_bin)
