"""Parameter counts of the published CaloFlow configurations (MODELS.md section 2.2), without building them."""

import numpy as np
import pytest

from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow
from calozoo.bijectors.layerwise_permutation import random_within_layers, reverse_within_layers
from calozoo.bijectors.made import made_num_params

PHOTON_LAYERS = [8, 160, 190, 5, 5]

# (features, context, hidden, num_blocks, made_hidden_blocks) -> count; K = 8 everywhere.
PAPER_CONFIGS = {
    "photons-teacher": ((368, 6, 378, 8, 1), 27_945_968),
    "photons-student": ((368, 6, 736, 8, 1), 56_457_088),
    "photons-flow1": ((5, 1, 64, 6, 2), 97_842),
    "pions-teacher": ((533, 8, 533, 8, 1), 56_962_776),
    "pions-student": ((533, 8, 500, 8, 1), 53_310_072),
    "pions-flow1": ((7, 1, 64, 6, 2), 116_550),
}


@pytest.mark.parametrize("name", list(PAPER_CONFIGS))
def test_expected_num_params_of_the_paper_configurations(name):
    (features, context, hidden, num_blocks, made_hidden_blocks), count = PAPER_CONFIGS[name]
    assert (
        AutoregressiveRQSFlow.expected_num_params(features, context, hidden, num_blocks, 8, made_hidden_blocks)
        == count
    )


def test_published_totals():
    """Flow-I + Flow-II, as published by the challenge (28.0 M photons, 57.1 M pions, student 56.6 M / 53.4 M)."""
    counts = {name: count for name, (_, count) in PAPER_CONFIGS.items()}
    assert round((counts["photons-teacher"] + counts["photons-flow1"]) / 1e6, 1) == 28.0
    assert round((counts["pions-teacher"] + counts["pions-flow1"]) / 1e6, 1) == 57.1
    assert round((counts["photons-student"] + counts["photons-flow1"]) / 1e6, 1) == 56.6
    assert round((counts["pions-student"] + counts["pions-flow1"]) / 1e6, 1) == 53.4


def test_made_formula_by_hand():
    """Photon teacher MADE: D·H+H + C·H+H + (H²+H) + H·D·M + D·M with D 368, C 6, H 378, M 23."""
    assert made_num_params(368, 6, 378, 1, 23) == 139_482 + 2_646 + 143_262 + 3_199_392 + 8_464
    assert made_num_params(4, 0, 3, 1, 2) == 4 * 3 + 3 + (9 + 3) + 3 * 8 + 8  # no context path


def test_a_built_mid_size_flow_has_the_expected_count():
    rng = np.random.default_rng(0)
    permutations = [reverse_within_layers(PHOTON_LAYERS), random_within_layers(PHOTON_LAYERS, rng)]
    flow = AutoregressiveRQSFlow(368, 6, 32, 3, kind="maf", permutations=permutations, seed=0)
    expected = AutoregressiveRQSFlow.expected_num_params(368, 6, 32, 3, 8, 1)
    assert flow.num_params == expected == 3 * made_num_params(368, 6, 32, 1, 23)
