"""`calozoo generate`: showers from a model, streamed to an HDF5 file in chunks."""

import click
import numpy as np
from tqdm.auto import tqdm

from calozoo_tools._errors import reports_errors


def _energies(model, n, energies_from, seed):
    from calozoo.data.files import read_incident_energies
    from calozoo.data.incident_energies import sample_incident_energies

    if (n is None) == (energies_from is None):
        raise click.UsageError("Give exactly one of -n N or --energies-from FILE.")
    if energies_from is not None:
        return read_incident_energies(energies_from)
    if n < 1:
        raise click.BadParameter(f"must be >= 1; got {n}.", param_hint="-n")
    return sample_incident_energies(model.dataset, n, seed)


@click.command("generate")
@click.argument("name")
@click.option("-n", "n", type=int, help="Number of showers; incident energies follow the dataset's spectrum.")
@click.option("--energies-from", type=click.Path(dir_okay=False), help="Take incident energies from this shower file.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output HDF5 file.")
@click.option("--batch-size", default=10_000, show_default=True, help="Showers per generation call (and per chunk written).")
@click.option("--seed", default=0, show_default=True, help="Random seed: the same seed gives the same file.")
@click.option("--version", "version", type=int, default=None, help="Artifact version (default: newest).")
@click.option("--float64", "use_float64", is_flag=True, help="Compute in float64 (default float32, faster).")
@reports_errors
def generate_command(name, n, energies_from, output, batch_size, seed, version, use_float64):
    """Generate showers with model NAME and write them to OUTPUT in the CaloChallenge format."""
    import calozoo as zoo
    from calozoo.data.files import ShowerWriter
    from calozoo.models.base import seed_pair
    import tensorflow as tf

    if batch_size < 1:
        raise click.BadParameter(f"must be >= 1; got {batch_size}.", param_hint="--batch-size")
    model = zoo.load(name, version=version, dtype="float64" if use_float64 else "float32")
    energies = _energies(model, n, energies_from, seed)
    sample = model.sampler()
    attrs = {"source": "generated", "model": name, "artifact": str(model.artifact_dir), "seed": seed}
    with ShowerWriter(output, model.n_voxels, attrs=attrs) as writer, \
            tqdm(total=len(energies), unit="shower", desc=name) as bar:
        for index, start in enumerate(range(0, len(energies), batch_size)):
            chunk = energies[start : start + batch_size]
            showers = sample(tf.constant(chunk, tf.float32), seed_pair(seed, index)).numpy()
            writer.append(chunk, showers)
            bar.update(len(chunk))
    click.echo(f"wrote {len(energies)} showers to {output}")
