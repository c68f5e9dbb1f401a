"""The `calozoo` command: a click group whose subcommands are imported only when they run.

`calozoo --help` and usage errors neither import TensorFlow nor print its log lines; without `-v` the C++ log of
TensorFlow / absl (written straight to file descriptor 2) and the Python warnings of TensorFlow are silenced.
"""

import importlib
import logging
import os
import signal
import sys
import threading
import warnings

import click

# name -> "module:attribute" of tools/ (the package calozoo_tools)
SUBCOMMANDS = {
    "list": "models:list_command",
    "info": "models:info_command",
    "card": "models:card_command",
    "data": "data:data_group",
    "synthesize": "synthesize:synthesize_command",
    "train": "train:train_command",
    "generate": "generate:generate_command",
    "evaluate": "evaluate:evaluate_command",
    "evaluate-calogan": "evaluate_calogan:evaluate_calogan_command",
    "time": "timing:time_command",
    "export": "export:export_command",
    "import": "import_checkpoint:import_command",
    "intrinsic-dim": "intrinsic_dim:intrinsic_dim_command",
}

# One-line help of each subcommand for `calozoo --help`, so that listing them imports nothing.
SHORT_HELP = {
    "list": "Registered models, their shipped and user versions.",
    "info": "Configuration, size and artifacts of one model.",
    "card": "Recompute an artifact's held-out metrics and card.",
    "data": "The CaloChallenge shower files: list, fetch, split.",
    "synthesize": "Write N synthetic showers of a dataset's geometry.",
    "train": "Train a model; writes a version to the user store.",
    "generate": "Generate showers with a model into an HDF5 file.",
    "evaluate": "Evaluate generated showers against GEANT4 ones.",
    "evaluate-calogan": "The CaloFlow paper's table for the CaloGAN models.",
    "time": "Generation speed (ms per shower) of a model.",
    "export": "Export a model as a SavedModel for TF Serving.",
    "import": "Import a checkpoint of the reference PyTorch code.",
    "intrinsic-dim": "Intrinsic dimension of the showers in a file.",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand is invoked (or its help shown)."""

    def __init__(self, *args, lazy_commands: dict | None = None, short_help: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self.lazy_short_help = dict(short_help or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, cmd_name):
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            command = getattr(importlib.import_module(f"calozoo_tools.{module_name}"), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx, formatter):
        """The command list from the stored one-line helps: `--help` imports no subcommand module."""
        rows = [(name, self.lazy_short_help.get(name) or self._loaded_short_help(ctx, name))
                for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _loaded_short_help(self, ctx, name):
        command = self.get_command(ctx, name)
        return command.get_short_help_str(limit=60) if command else ""


def silence_tensorflow() -> None:
    """Hides TensorFlow's and absl's log lines and Python warnings for the rest of this process.

    The C++ log goes to file descriptor 2 directly (TF_CPP_MIN_LOG_LEVEL no longer stops the lines written before
    absl::InitializeLog), so fd 2 is pointed at /dev/null and Python's sys.stderr keeps writing to the terminal
    through a duplicate of the original descriptor. Only done when sys.stderr really is fd 2 (not under a test
    runner that captured it).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("tensorflow", "tensorflow_probability", "tf_keras", "keras", "absl"):
        warnings.filterwarnings("ignore", module=module)
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, ValueError, OSError):
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


_TERMINATION = {}  # {"code": 143} once SIGTERM has arrived


def _terminated(signum, frame):
    """SIGTERM unwinds like Ctrl-C: `with` blocks exit, so writers delete their temporary files.

    Python runs the handler between any two bytecodes of the main thread, also inside a `__del__` or a weakref
    callback, where the SystemExit is printed as "Exception ignored" and lost; the request is therefore also
    recorded, for the long loops to honour at their next step (`stop_if_terminated`).
    """
    _TERMINATION["code"] = 128 + signum
    raise SystemExit(128 + signum)


def stop_if_terminated() -> None:
    """SystemExit(143) if SIGTERM has arrived, even when its first SystemExit was swallowed: call once per step of
    a long loop (a batch of showers, an epoch)."""
    if _TERMINATION:
        raise SystemExit(_TERMINATION["code"])


def handle_sigterm(ctx: click.Context) -> None:
    """Until the command ends, SIGTERM raises SystemExit(143) instead of killing the process outright."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


@click.group(cls=LazyGroup, lazy_commands=SUBCOMMANDS, short_help=SHORT_HELP)
@click.option("-v", "--verbose", is_flag=True, help="Show TensorFlow's log lines and warnings.")
@click.version_option(package_name="calozoo")
@click.pass_context
def main(ctx, verbose):
    """calozoo: normalizing-flow calorimeter shower generators (energies in MeV)."""
    handle_sigterm(ctx)
    if not verbose:
        silence_tensorflow()
