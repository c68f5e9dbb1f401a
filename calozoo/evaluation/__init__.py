"""The CaloChallenge evaluation: high-level features, separation powers, classifiers, FPD/KPD, PRDC and reports.

    >>> from calozoo.evaluation import evaluate
    >>> results = evaluate("gen.h5", "ref.h5", "2", modes="hist,cls-hgb", output_dir="eval_out")  # doctest: +SKIP
"""

from calozoo.evaluation.evaluate import MODES, evaluate

__all__ = ["evaluate", "MODES"]
