"""`calozoo generate`: showers from a model, streamed to an HDF5 file in chunks, optionally one shard of a run.

A large run is split over processes or machines with `--shard i/n`: every shard computes the same energy list
(same seed or file), writes rows [i*N/n, (i+1)*N/n) of it, and draws its own independent random streams (the rule
is `ShowerGenerator.iter_generate`'s, see calozoo.models.base: `shard_rows`, `shard_seed`).
"""

import click
from tqdm.auto import tqdm

from calozoo_tools._errors import allow_energy_range_option, overwrite_option, refuse_existing, reports_errors
from calozoo_tools.cli import stop_if_terminated


def _energies(model, n, energies_from, seed, allow_energy_range=False):
    from calozoo.data.files import read_incident_energies
    from calozoo.data.geometry import check_incident_energy_range
    from calozoo.data.incident_energies import sample_incident_energies

    if (n is None) == (energies_from is None):
        raise click.UsageError("Give exactly one of -n N or --energies-from FILE.")
    if energies_from is not None:
        energies = read_incident_energies(energies_from)
        if not allow_energy_range:
            check_incident_energy_range(energies, model.dataset, f"{energies_from}: incident_energies")
        return energies
    if n < 1:
        raise click.BadParameter(f"must be >= 1; got {n}.", param_hint="-n")
    return sample_incident_energies(model.dataset, n, seed)


def describe_loaded(model, name) -> str:
    """'model: NAME v2 (shipped, PATH)', plus a hint when the user store holds a version that was not picked."""
    from calozoo.registry import USER, artifact_versions_of, split_origin

    directory, origin = model.artifact_dir, model.artifact_origin
    text = f"model: {directory.parent.name} {directory.name} ({origin}, {directory})"
    if origin != USER and origin != "path":
        mine = [a for a in artifact_versions_of(split_origin(str(name))[0]) if a.origin == USER]
        if mine:
            text += f"; your own training v{mine[-1].version} is used with {split_origin(str(name))[0]}@user"
    return text


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; None -> (0, 1), the whole run."""
    if text is None:
        return 0, 1
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise click.BadParameter(f"must look like i/n (shard i of n, counting from 0); got {text!r}.",
                                 param_hint="--shard")
    index, count = int(parts[0]), int(parts[1])
    if count < 1 or index >= count:
        raise click.BadParameter(f"needs n >= 1 and 0 <= i < n; got {text!r}.", param_hint="--shard")
    return index, count


@click.command("generate")
@click.argument("name")
@click.option("-n", "n", type=int, help="Number of showers; incident energies follow the dataset's spectrum.")
@click.option("--energies-from", type=click.Path(dir_okay=False), help="Take incident energies from this shower file.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output HDF5 file.")
@click.option("--batch-size", default=10_000, show_default=True,
              help="Showers per generation call (and per chunk written).")
@click.option("--seed", default=0, show_default=True, help="Random seed: the same seed gives the same file.")
@click.option("--version", "version", type=int, default=None, help="Artifact version (default: newest).")
@click.option("--float64", "use_float64", is_flag=True, help="Compute in float64 (default float32, faster).")
@click.option("--shard", default=None, metavar="I/N",
              help="Write only shard I of N (from 0): rows [I*total/N, (I+1)*total/N) with independent seeds.")
@overwrite_option
@allow_energy_range_option
@reports_errors
def generate_command(name, n, energies_from, output, batch_size, seed, version, use_float64, shard, overwrite,
                     allow_energy_range):
    """Generate showers with model NAME and write them to OUTPUT in the CaloChallenge format.

    NAME is a registered model (its newest shipped version), NAME@user (your newest `calozoo train` of it) or the
    path of an artifact directory. Incident energies are MeV.
    """
    if batch_size < 1:
        raise click.BadParameter(f"must be >= 1; got {batch_size}.", param_hint="--batch-size")
    shard_index, shard_count = parse_shard(shard)
    refuse_existing(output, overwrite=overwrite)
    import calozoo as zoo
    from calozoo.data.files import ShowerWriter
    from calozoo.models.base import shard_rows

    model = zoo.load(name, version=version, dtype="float64" if use_float64 else "float32")
    click.echo(describe_loaded(model, name), err=True)
    all_energies = _energies(model, n, energies_from, seed, allow_energy_range)
    rows = shard_rows(len(all_energies), shard_index, shard_count)
    batches = model.iter_generate(all_energies, seed=seed, batch_size=batch_size, shard=(shard_index, shard_count))
    attrs = {"source": "generated", "model": name, "artifact": str(model.artifact_dir), "seed": seed}
    if shard_count > 1:
        attrs.update(shard=f"{shard_index}/{shard_count}", first_row=rows.start, total_rows=len(all_energies))
    with ShowerWriter(output, model.n_voxels, attrs=attrs) as writer, \
            tqdm(total=rows.stop - rows.start, unit="shower", desc=name) as bar:
        for energies, showers in batches:
            stop_if_terminated()
            writer.append(energies, showers)
            bar.update(len(energies))
    where = f" (shard {shard_index}/{shard_count}: rows {rows.start}-{rows.stop - 1} of {len(all_energies)})" \
        if shard_count > 1 else ""
    click.echo(f"wrote {rows.stop - rows.start} showers to {output}{where}")
