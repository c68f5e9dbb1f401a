"""`calozoo evaluate`: the CaloChallenge evaluation of a generated file against a reference file."""

import click

from calozoo_tools._errors import allow_energy_range_option, reports_errors


@click.command("evaluate")
@click.argument("generated", type=click.Path(dir_okay=False))
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("-d", "--dataset", required=True,
              type=click.Choice(["1-photons", "1-pions", "2", "3", "calogan-eplus", "calogan-gamma", "calogan-piplus"]),
              help="Dataset (CaloChallenge or CaloGAN); the voxel count of both files must match it.")
@click.option("-m", "--modes", default="all", show_default=True,
              help="Comma list of hist, avg, cls-low, cls-low-normed, cls-high, cls-hgb, fpd (= kpd), prdc, "
                   "cls-seed, cls-seed-normed, nn, shape; or all (the CaloChallenge modes) or seed (cls-seed, "
                   "cls-seed-normed, nn). shape: point-cloud shape diagnostics (covariance eigenvalues and means of "
                   "(z, alpha, r), number of hits, longitudinal and radial profiles; DS1-3), only when named.")
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="New (or empty) directory for results.json, report.md and the plots.")
@click.option("--repeats", default=1, show_default=True, help="DNN classifier runs (mean +- std).")
@click.option("--fast", is_flag=True, help="Small DNN classifier settings for quick CPU runs (not the official ones).")
@click.option("--seed", default=0, show_default=True, help="Seed of every random choice (splits, networks, folds).")
@click.option("--equalize", is_flag=True,
              help="If the files hold different numbers of showers, use the first min(N) of each for the classifiers.")
@allow_energy_range_option
@reports_errors
def evaluate_command(generated, reference, dataset, modes, output_dir, repeats, fast, seed, equalize,
                     allow_energy_range):
    """Evaluate GENERATED showers against REFERENCE (GEANT4) showers; prints a short table."""
    from calozoo.evaluation import evaluate
    from calozoo.evaluation.evaluate import summary_rows

    if repeats < 1:
        raise click.BadParameter(f"must be >= 1; got {repeats}.", param_hint="--repeats")
    results = evaluate(generated, reference, dataset, modes=modes, output_dir=output_dir, repeats=repeats,
                       fast=fast, seed=seed, equalize=equalize, allow_energy_range=allow_energy_range)
    rows = summary_rows(results)
    width = max((len(name) for name, _ in rows), default=10)
    for name, value in rows:
        click.echo(f"{name:{width}s}  {value}")
    click.echo("wall time: " + ", ".join(f"{m} {t:.1f}s" for m, t in results["wall_time_s"].items()))
    click.echo(f"report: {output_dir}/report.md")
