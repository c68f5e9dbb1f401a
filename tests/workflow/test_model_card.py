"""The model card's metrics section."""

from calozoo.workflow.model_card import render_model_card

METADATA = {
    "num_params": 1234, "config_changes": {"hidden": 8}, "training": {},
    "training_data": {"file": "d.h5", "n_showers": 10, "n_train": 8, "n_heldout": 2, "synthetic": False},
    "metrics": {"n_showers": 2, "separation_summary": {"all_high_level": 0.25},
                "separation_power": {"etot_einc": 0.5, "e_layer_10": 0.1, "e_layer_2": 0.2, "e_layer_0": 0.3},
                "heldout_log_prob": -12.345, "log_prob_space": "Flow-1 + Flow-2 + 44 Flow-3 terms, logit space"},
}


def test_layers_are_listed_in_layer_order_and_the_density_says_its_space():
    card = render_model_card("m", "a model", METADATA, "calozoo train m")
    rows = [line.split("|")[1].strip() for line in card.splitlines() if line.startswith("| e")]
    assert rows == ["etot_einc", "e_layer_0", "e_layer_2", "e_layer_10"]
    assert "| mean of all_high_level | 0.2500 |" in card
    assert "Held-out mean log-likelihood (Flow-1 + Flow-2 + 44 Flow-3 terms, logit space): -12.35" in card
