"""The full-shower densities are the sums of their flows' terms, recomputed here from the sub-flows.

Each model's deterministic density (`log_prob_graph`, every noise draw replaced by its mean) is compared with the
sum of the log densities of its flows, each evaluated on inputs that these tests build in NumPy from the raw showers
(iCaloFlow, CaloFlow) or through the training code's own input path (L2LFlow). The densities are defined in the
flows' preprocessed coordinates, so no preprocessing Jacobian enters the sums. Tiny float64 models, synthetic
sparse showers: a term dropped, doubled or fed the wrong layer changes the total by far more than the tolerance.
"""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
from calozoo.models.icaloflow import ICaloFlow, ICaloFlowConfig
from calozoo.models.l2lflow import L2LFlow, L2LFlowConfig
from tests.models.helpers import randomize

RTOL = 1e-10


def logit(x, alpha):
    """The models' logit transform, logit(alpha + (1 - 2 alpha) x), in NumPy."""
    squeezed = alpha + (1.0 - 2.0 * alpha) * x
    return np.log(squeezed) - np.log1p(-squeezed)


def sparse_showers(n, n_layers, layer_size, seed=0):
    """(incident energies (n,) MeV, showers (n, n_layers * layer_size) MeV): about a third of the voxels hit."""
    rng = np.random.default_rng(seed)
    showers = rng.exponential(20.0, (n, n_layers * layer_size)) * (rng.uniform(size=(n, n_layers * layer_size)) < 0.3)
    return np.array([3_000.0, 40_000.0, 250_000.0])[:n], showers


def log_prob(flow, x, context):
    return flow.log_prob(tf.constant(x), tf.constant(context)).numpy()


# ----- iCaloFlow: Flow-1 (layer energies) + Flow-2 (layer 0) + Flow-3 (each later layer | the previous one) ----
def icaloflow_terms(model: ICaloFlow, showers, incident):
    """Per shower, the Flow-1 term, the Flow-2 term and the 44 Flow-3 terms (N, 44), from NumPy inputs."""
    c = model.config
    n = len(incident)
    layers = showers.reshape(n, model.n_layers, model.layer_size) + 0.5 * c.noise_mev  # the noise's mean
    sums = showers.reshape(n, model.n_layers, model.layer_size).sum(-1) + 0.5 * c.noise_mev
    energy_logit = logit(np.clip(sums / c.energy_unit_mev, 0.0, 1.0), c.logit_alpha)
    shape_logit = logit(layers / layers.sum(-1, keepdims=True), c.logit_alpha)
    incident_condition = np.log10(incident)[:, None] - c.incident_energy_offset
    flow_1 = log_prob(model.energy_flow, energy_logit, incident_condition)
    first_condition = np.concatenate([incident_condition, c.first_layer_energy_scale * energy_logit[:, :1]], -1)
    flow_2 = log_prob(model.first_layer_flow, shape_logit[:, 0], first_condition)
    flow_3 = np.stack([
        log_prob(model.layer_flow, shape_logit[:, k],
                 np.concatenate([incident_condition, energy_logit[:, k : k + 1], energy_logit[:, k - 1 : k],
                                 shape_logit[:, k - 1], np.tile(np.eye(model.n_layers - 1)[k - 1], (n, 1))], -1))
        for k in range(1, model.n_layers)], axis=-1)
    return flow_1, flow_2, flow_3


def test_icaloflow_density_is_flow_1_plus_flow_2_plus_the_44_flow_3_terms():
    model = randomize(ICaloFlow(ICaloFlowConfig(energy_hidden=8, first_layer_hidden=8, layer_hidden=8, num_blocks=2,
                                                dtype="float64")))
    incident, showers = sparse_showers(3, model.n_layers, model.layer_size)
    flow_1, flow_2, flow_3 = icaloflow_terms(model, showers, incident)
    total = model.log_prob_graph(showers, incident[:, None]).numpy()
    # every term matters at this tolerance: the smallest is far above the rounding of the total
    assert min(np.abs(flow_1).min(), np.abs(flow_2).min(), np.abs(flow_3).min()) > 1e-3
    np.testing.assert_allclose(total, flow_1 + flow_2 + flow_3.sum(-1), rtol=RTOL)


# ----- CaloFlow teacher: Flow-I (u-space layer energies) + Flow-II (layer-normalised voxels) ------------------
def caloflow_terms(model: CaloFlow, showers, incident):
    """Per shower, the Flow-I and the Flow-II term, from NumPy inputs in model units (100 GeV)."""
    c = model.config
    voxels = showers / c.energy_unit_mev + 0.5 * c.voxel_noise  # the noise's mean (both noises are equal here)
    energy = incident[:, None] / c.energy_unit_mev
    edges = np.cumsum((0,) + tuple(model.layer_sizes))
    layers = [voxels[:, a:b] for a, b in zip(edges[:-1], edges[1:])]
    layer_energies = np.stack([layer.sum(-1) for layer in layers], -1)
    remaining = np.cumsum(layer_energies[:, ::-1], axis=-1)[:, ::-1]
    u = np.concatenate([layer_energies.sum(-1, keepdims=True) / (c.u0_factor * energy),
                        layer_energies[:, :-1] / remaining[:, :-1]], -1)
    energy_condition = np.log10(c.energy_condition_scale * energy)
    flow_1 = log_prob(model.energy_flow, logit(np.clip(u, 0.0, 1.0), c.logit_alpha), energy_condition)
    shapes = np.concatenate([layer / (layer.sum(-1, keepdims=True) + 1e-16) for layer in layers], -1)
    condition = np.concatenate(
        [energy_condition, np.log10(layer_energies + c.layer_condition_eps) + c.layer_condition_offset], -1)
    flow_2 = log_prob(model.shower_flow, logit(shapes, c.logit_alpha), condition)
    return flow_1, flow_2


@pytest.mark.parametrize("dataset", ["1-photons", "calogan-eplus"])
def test_caloflow_teacher_density_is_flow_1_plus_flow_2(dataset):
    model = randomize(CaloFlow(CaloFlowConfig(dataset=dataset, hidden=12, num_blocks=2, energy_hidden=8,
                                              energy_blocks=2, dropout=0.0, dtype="float64")))
    sizes = model.layer_sizes
    incident, _ = sparse_showers(3, 1, 1)
    showers = sparse_showers(3, 1, sum(sizes), seed=1)[1]
    flow_1, flow_2 = caloflow_terms(model, showers, incident)
    assert min(np.abs(flow_1).min(), np.abs(flow_2).min()) > 1e-3
    np.testing.assert_allclose(model.log_prob_graph(showers, incident[:, None]).numpy(), flow_1 + flow_2, rtol=RTOL)


# ----- L2LFlow: energy flow + one term per layer, each given up to 5 previous layers ---------------------------
@pytest.mark.parametrize("layer_flows", ["shared", "causal"])
def test_l2lflow_density_is_the_energy_flow_plus_one_term_per_layer(layer_flows):
    """The per-layer terms come from `window_inputs`, the path the layer flows are trained on."""
    model = randomize(L2LFlow(L2LFlowConfig(dataset="2", layer_flows=layer_flows, num_blocks=1, hidden=2,
                                            energy_hidden=4, energy_blocks=1, dtype="float64")))
    c = model.config
    incident, showers = sparse_showers(2, model.n_layers, model.n_r * model.n_alpha)
    model.set_layer_maxima(showers)
    layers = model.layers_gev(showers).numpy()  # (N, 45, r, alpha) GeV
    incident_gev = incident[:, None] / 1e3
    kept = np.where(layers >= c.cut_gev, layers, 0.0).sum((-2, -1))
    energy_x = logit(np.clip((kept + c.energy_noise_mean_gev) * c.energy_scale_gev, 0.0, 1.0), c.energy_logit_alpha)
    terms = [log_prob(model.energy_flow, energy_x, 2.0 * np.log10(incident_gev + 1e-6) - 3.0)]
    for layer in range(model.n_layers):
        window = np.stack([layers[:, layer - k] if layer - k >= 0 else np.zeros_like(layers[:, 0])
                           for k in range(c.previous_layers + 1)], axis=1)
        x, context = model.window_inputs(tf.constant(window), tf.fill([len(incident)], layer),
                                         tf.constant(incident_gev), None, layer)
        terms.append(model.flow_for(layer).log_prob(x, context).numpy())
    assert np.abs(np.stack(terms)).min() > 1e-3
    np.testing.assert_allclose(model.log_prob_graph(showers, incident[:, None]).numpy(), np.sum(terms, axis=0),
                               rtol=RTOL)
