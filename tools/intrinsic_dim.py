"""`calozoo intrinsic-dim`: the Levina-Bickel intrinsic dimension of the showers in a file (CaloMan's latent size)."""

import click

from calozoo_tools._errors import reports_errors


@click.command("intrinsic-dim")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-k", "k", default=20, show_default=True, type=click.IntRange(min=2), help="Neighbours per point.")
@click.option("-n", "n", default=10_000, show_default=True, type=click.IntRange(min=3),
              help="Showers used (a seeded random subset of the file).")
@click.option("--dataset", default=None,
              help="The file's geometry ('1-photons', '1-pions', '2', '3'); with it the showers are layer-normalised "
                   "first, as CaloMan's autoencoder sees them.")
@click.option("--averaging", type=click.Choice(["mackay-ghahramani", "levina-bickel"]), default="mackay-ghahramani",
              show_default=True, help="How the per-point estimates are combined.")
@click.option("--seed", default=0, show_default=True, help="Seed of the subset.")
@reports_errors
def intrinsic_dim_command(file, k, n, dataset, averaging, seed):
    """Estimate the intrinsic dimension of the showers in FILE."""
    import numpy as np

    from calozoo.data.files import read_showers
    from calozoo.data.geometry import load_geometry
    from calozoo.evaluation.intrinsic_dimension import intrinsic_dimension_of_showers

    geometry = load_geometry(dataset) if dataset else None
    layer_sizes = geometry.layer_sizes if geometry else None
    _, showers = read_showers(file, n_voxels=geometry.n_voxels if geometry else None)
    rows = np.sort(np.random.default_rng(seed).permutation(len(showers))[:n])
    estimate = intrinsic_dimension_of_showers(showers[rows], layer_sizes, k=k, averaging=averaging)
    where = "layer-normalised " if dataset else ""
    click.echo(f"intrinsic dimension of {len(rows)} {where}showers (k = {k}, {averaging}): {estimate:.2f}")
