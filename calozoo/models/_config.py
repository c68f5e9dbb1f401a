"""What the frozen-dataclass configs of the flow families share: the dict round trip and the spline settings."""

from __future__ import annotations

import dataclasses

from calozoo.bijectors.rq_spline import SplineSettings

__all__ = ["FlowConfig"]


class FlowConfig:
    """Mixin for a frozen dataclass with `num_bins`, `tail_bound` and `min_bin` fields.

    `family_label` names the family in the error for unknown settings.
    """

    family_label = "model"

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
