"""`calozoo time`: generation speed by the CaloChallenge protocol (ms per shower at batch 1 / 100 / 10 000)."""

import json

import click

from calozoo_tools._errors import reports_errors


def _batch_sizes(text):
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers; got '{text}'.",
                                 param_hint="--batch-sizes") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"batch sizes must be >= 1; got '{text}'.", param_hint="--batch-sizes")
    return sizes


def _add_rows(path, report, name, paper_size, model, jit_compile) -> None:
    """Adds this call's rows to a benchmarks-format JSON file (created if missing)."""
    from pathlib import Path

    from calozoo.workflow.timing import write_timing_json

    existing = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    rows = existing.get("results", [])
    for row in report["results"]:
        rows.append({**row, "model": name, "size": "paper" if paper_size else "shipped",
                     "num_params": model.num_params, "jit_compile": jit_compile and model.supports_xla})
    write_timing_json(path, existing.get("environment") or report["environment"], rows)


@click.command("time")
@click.argument("name")
@click.option("--batch-sizes", default="1,100,10000", show_default=True, help="Comma-separated batch sizes.")
@click.option("--repeats", default=10, show_default=True, type=click.IntRange(min=1),
              help="Timed calls per batch size.")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0), help="Untimed calls first.")
@click.option("--paper-size", is_flag=True, help="Time the paper configuration with random weights instead of the "
                                                 "shipped artifact.")
@click.option("--float64", "use_float64", is_flag=True, help="Compute in float64 (default float32).")
@click.option("--threads", type=int, default=None, help="TensorFlow intra-op threads (default: all cores).")
@click.option("--no-xla", is_flag=True, help="Time the sampler without XLA compilation.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Also add the rows to this JSON file ({environment, results}, the benchmarks/ format; rows of "
                   "earlier calls are kept).")
@reports_errors
def time_command(name, batch_sizes, repeats, warmup, paper_size, use_float64, threads, no_xla, as_json, out_file):
    """Time showers generation of model NAME; excludes model loading and file I/O."""
    sizes = _batch_sizes(batch_sizes)
    import tensorflow as tf

    import calozoo as zoo
    from calozoo.workflow.timing import time_generation

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    dtype = "float64" if use_float64 else "float32"
    model = zoo.create(name, dtype=dtype) if paper_size else zoo.load(name, dtype=dtype)
    report = time_generation(model, sizes, repeats=repeats, warmup=warmup, jit_compile=not no_xla,
                             progress=not as_json)
    report.update(model=name, weights="random (paper size)" if paper_size else "shipped artifact",
                  num_params=model.num_params)
    if out_file:
        _add_rows(out_file, report, name, paper_size, model, not no_xla)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    env = report["environment"]
    click.echo(f"{name} ({report['weights']}, {model.num_params:,} parameters), {env['dtype']} on {env['device']}, "
               f"{env['intra_op_threads']} threads")
    for row in report["results"]:
        click.echo(f"  batch {row['batch_size']:>6}: {row['mean_ms_per_shower']:.4g} ± {row['std_ms_per_shower']:.2g} "
                   f"ms/shower ({row['repeats']} repeats)")
