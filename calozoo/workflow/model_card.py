"""The model card written next to every trained artifact."""

from __future__ import annotations

import json

__all__ = ["render_model_card"]


def _metric_lines(metrics: dict) -> list[str]:
    lines = []
    summary = metrics.get("separation_summary", {})
    powers = metrics.get("separation_power", {})
    if summary or powers:
        lines.append(f"Separation powers (0 = identical, 1 = disjoint) on {metrics.get('n_showers')} held-out "
                     f"showers, generated at the same incident energies:")
        lines.append("")
        lines.append("| histogram | separation power |")
        lines.append("| --- | --- |")
        for key in sorted(summary):
            lines.append(f"| mean of {key} | {summary[key]:.4f} |")
        layers = sorted((k for k in powers if k.startswith("e_layer_")), key=lambda k: int(k.rsplit("_", 1)[1]))
        for key in ("etot_einc", *layers):
            if key in powers:
                lines.append(f"| {key} | {powers[key]:.4f} |")
        lines.append("")
    if "heldout_log_prob" in metrics:
        space = metrics.get("log_prob_space") or "Flow-I u-space + Flow-II logit space"
        lines.append(f"Held-out mean log-likelihood ({space}): "
                     f"{metrics['heldout_log_prob']:.2f}")
    return lines


def _files(file) -> str:
    """`file: `a.h5`` for one training file, `files: `a.h5`, `b.h5`` for several."""
    if isinstance(file, list):
        return "files: " + ", ".join(f"`{name}`" for name in file)
    return f"file: `{file}`"


def render_model_card(name: str, description: str, metadata: dict, retrain_command: str) -> str:
    """Markdown: what the model is, what it was trained on, how long, how big, how good, how to retrain."""
    data = metadata["training_data"]
    synthetic = data.get("synthetic")
    lines = [
        f"# {name} (artifact v{metadata.get('version', '?')})",
        "",
        description,
        "",
        "## Training data",
        "",
        f"- {_files(data.get('file'))} ({data.get('n_showers')} showers; {data.get('n_train')} used for training"
        f", {data.get('n_heldout', 0)} held out for the metrics below)",
        f"- **{'SYNTHETIC showers (calozoo.data.synthetic), not GEANT4' if synthetic else 'GEANT4 showers'}**"
        + (": these weights demonstrate the pipeline; they are not a physics model of the real detector."
           if synthetic else ""),
        "",
        "## Architecture",
        "",
        f"- trainable parameters: {metadata['num_params']:,}",
        ("- configuration (differs from the paper's only where listed): "
         f"`{json.dumps(metadata.get('config_changes', {}))}`"),
        f"- weights stored as {metadata.get('weights_dtype', 'float16')}",
        "",
        "## Training",
        "",
    ]
    for part, result in metadata.get("training", {}).items():
        lines.append(f"- {part}: {result['epochs']} epochs, {result['steps']} steps, "
                     f"{result['wall_time_s']:.0f} s wall time; best epoch {result['best_epoch']} "
                     f"by {result['metric_name']} = {result['best_metric']:.4g}")
    lines += [f"- {note}" for note in metadata.get("provenance", [])]  # e.g. parts taken from an earlier run
    derived = metadata.get("derived_from")
    if derived:
        lines.append(f"- the weights of v{derived['version']} (trained as above, not retrained); only the generation "
                     f"options changed: `{json.dumps(derived['config_changes'])}` ({derived['reason']})")
    lines += ["", "## Metrics on held-out data", ""]
    lines += _metric_lines(metadata.get("metrics", {})) or ["(none measured)"]
    versions = ", ".join(f"{k} {v}" for k, v in metadata.get("libraries", {}).items())
    lines += ["", "## Reproduce", "", "```", retrain_command, "```", "", f"Libraries: {versions}", ""]
    return "\n".join(lines)
