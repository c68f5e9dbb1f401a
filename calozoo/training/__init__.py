"""Training: the loop, schedules, distillation, tf.distribute, and one trainer per family.

`TRAINERS` maps each family's name to its trainer, `train(model, showers, energies, checkpoint_dir, **options)`;
the registry (calozoo.registry) combines it with the builders of calozoo.models. `TRAINABLE_PARTS` maps the
families whose parts train separately (`train(..., parts=...)`) to `parts(model) -> {part name: tf.Module}`.
"""

from calozoo.training.caloflow import train_caloflow
from calozoo.training.caloman import train_caloman
from calozoo.training.calopointflow import train_calopointflow
from calozoo.training.icaloflow import train_icaloflow
from calozoo.training.icaloflow import trainable_parts as icaloflow_parts
from calozoo.training.l2lflow import train_l2lflow
from calozoo.training.l2lflow import trainable_parts as l2lflow_parts

TRAINERS = {"caloflow": train_caloflow, "icaloflow": train_icaloflow, "caloman": train_caloman,
            "l2lflow": train_l2lflow, "calopointflow": train_calopointflow}

TRAINABLE_PARTS = {"icaloflow": icaloflow_parts, "l2lflow": l2lflow_parts}

__all__ = ["TRAINERS", "TRAINABLE_PARTS"]
