"""`calozoo train`: trains a registered model on a shower file and writes a versioned artifact with its card."""

import glob
import re

import click
import yaml

from calozoo_tools._errors import allow_energy_range_option, reports_errors


class _CommandLineLoader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-11` (an exponent without a decimal point) as a string; on a command line it is a number."""


_CommandLineLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
                                         list("-+0123456789"))


def _overrides(settings, option="--set"):
    """`KEY=VALUE` pairs, values parsed as YAML (numbers, `1e-11` included, booleans, strings, `{flow: mappings}`)."""
    result = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE; got '{item}'.", param_hint=option)
        result[key.strip()] = yaml.load(value, Loader=_CommandLineLoader)
    return result


def _data_files(patterns) -> list[str]:
    """The --data values with shell-style patterns (`dataset_3_*.hdf5`) expanded, sorted, in the order given."""
    files = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise click.BadParameter(f"no file matches '{pattern}'.", param_hint="--data")
            files += matches
        else:
            files.append(pattern)
    return files


@click.command("train")
@click.argument("name")
@click.option("--data", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="Training showers (CaloChallenge or CaloGAN HDF5); repeat it, or give a quoted pattern, for "
                   "several files (their rows one after the other: `--data dataset_3_1.hdf5 --data dataset_3_2.hdf5`).")
@click.option("--epochs", type=int, default=None, help="Epochs of every trained part (default: the recipe's).")
@click.option("--resume", is_flag=True, help="Continue from the last epoch checkpoint in --workdir.")
@click.option("--from-checkpoints", is_flag=True,
              help="Train nothing: write the artifact from the finished checkpoints in --workdir (every part must "
                   "have reached its epochs or stopped early).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None, help="Checkpoints (default runs/NAME).")
@click.option("--output", "output_root", type=click.Path(file_okay=False), default=None,
              help="Artifact root (default: the user store, $CALOZOO_HOME/artifacts, ~/.local/share/calozoo/artifacts "
                   "unless set; never the shipped artifacts).")
@click.option("--teacher", default=None,
              help="For a student: the teacher (NAME, NAME@user, NAME@user:N or an artifact path; default: the "
                   "config's teacher, your own training of it if the user store has one, else the shipped one).")
@click.option("--parts", default=None, metavar="PART,PART",
              help="Train only these parts (iCaloFlow: energy_flow, first_layer_flow, layer_flow; L2LFlows: "
                   "energy_flow, layer_flow...); the others keep the weights of --init-from.")
@click.option("--init-from", default=None, metavar="NAME|NAME@user|PATH",
              help="With --parts: the trained artifact whose weights the parts not trained keep (e.g. a shipped model "
                   "whose energy flow is retrained with --set energy_variables=shares).")
@click.option("--init-version", type=int, default=None, help="The version of --init-from (default: as `load` picks).")
@click.option("--variant", default=None,
              help="Start from a named variant of the model's YAML (`calozoo info NAME` lists them; 'compact' is the "
                   "recipe of the shipped artifact); --set, --train-set, --epochs and --heldout-fraction apply on top.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Change a config entry (compact models).")
@click.option("--train-set", "training", multiple=True, metavar="PART.KEY=VALUE",
              help="Change the training recipe: layer_flow.epochs=6, "
                   "'layer_flow.schedule={name: onecycle, max_lr: 2e-3}'.")
@click.option("--heldout-fraction", type=float, default=None,
              help="Rows kept out of training for the card's metrics  [default: the variant's, else 0.2].")
@click.option("--seed", default=0, show_default=True,
              help="Seed of the split, the initialisation order and the batches.")
@click.option("--no-metrics", is_flag=True, help="Skip the held-out metrics of the model card.")
@click.option("--strategy", type=click.Choice(["none", "mirrored", "multiworker"]), default="none",
              show_default=True, help="tf.distribute: one device, all local devices, or the workers of TF_CONFIG.")
@click.option("--streaming", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Stream the showers from disk in blocks instead of reading them into memory; auto: for iCaloFlow "
                   "input over 1 GiB of showers (the other families read into memory).")
@allow_energy_range_option
@reports_errors
def train_command(name, data, epochs, resume, from_checkpoints, workdir, output_root, teacher, parts, init_from,
                  init_version, variant, settings, training, heldout_fraction, seed, no_metrics, strategy, streaming,
                  allow_energy_range):
    """Train model NAME on the showers in DATA (MeV); checkpoints every epoch, and writes NAME/vN to the user
    store (see `calozoo info NAME`; load it with NAME@user)."""
    from calozoo.workflow.recipe import train_to_artifact

    if epochs is not None and epochs < 1:
        raise click.BadParameter(f"must be >= 1; got {epochs}.", param_hint="--epochs")
    files = _data_files(data)
    directory = train_to_artifact(name, files if len(files) > 1 else files[0], variant=variant,
                                  overrides=_overrides(settings),
                                  epochs=epochs, workdir=workdir,
                                  output_root=output_root, teacher=teacher, resume=resume,
                                  heldout_fraction=heldout_fraction, seed=seed, with_metrics=not no_metrics,
                                  strategy=strategy, training_overrides=_overrides(training, "--train-set"),
                                  allow_energy_range=allow_energy_range, streaming=streaming,
                                  from_checkpoints=from_checkpoints, init_from=init_from, init_version=init_version,
                                  parts=None if parts is None else tuple(p.strip() for p in parts.split(",")))
    click.echo(f"wrote {directory}")
