"""Writes the fixtures of `calozoo import l2lflow-ds2-electron`: reference checkpoint folders, saved and run by the
reference code itself at small sizes.

Runs in the environment of make_l2lflow_fixtures.py (PyTorch, pyyaml and the reference's nflows fork; its docstring
says how), from the reference FLC-QU-hep/ConvL2LFlow at `REFERENCE_COMMIT` (src/ and conf/ read from the git
directory into a temporary folder, nothing copied here):

    /work/peers-venv-l2lfix/bin/python tests/reference/make_l2lflow_import_fixtures.py \\
        --reference-git-dir PATH/TO/ConvL2LFlow/.git

In a temporary folder it lays out what the reference's training leaves behind, written by the reference's own
`Flow.save` as `src/train.py` calls it: `causal/flows/flowXX_final.pt` for the 45 DS2 layer flows (9 x 16 images,
squeeze (1, 2), 1 block, U-Net hidden 1 with one down-sampling (9, 8), embedding 2 channels, 5 previous layers:
the paper's form at tiny sizes), `energy/flows/flow.pt` (the 45-feature MAFlow of make_l2lflow_fixtures.py,
`energy_flow.npz`: 2 blocks, hidden 8), the two
`conf.yaml` (conf/causal.yaml and conf/energy.yaml at these sizes, with calozoo's registered DS2 energy scale
1 / 65 GeV) and `causal/trafo.pt`, the voxel transform's NormLayer state, made as `generator.py` makes it (run the
transform on training layers, save its state_dict) from layers whose maxima are `LAYER_MAXIMA_GEV`. Then the
reference's `Generator` (`src/generator.py`, no veto) loads those folders and generates `ROWS` showers, its
`torch.randn` draws replaced by recorded noise; each flow's input and output are recorded, and the log-density of
the generated showers is the energy flow's plus every layer flow's, evaluated by the reference flows on them.

Every weight is drawn at random on a float16-exact grid as in make_l2lflow_fixtures.py (`randomize`); to keep the
files small, layers `DISTINCT`..44 share the U-Nets and embedding of layer `DISTINCT - 1` but have their own ActNorm
and LU 1x1-convolution weights (so every layer flow is a different function). Written to tests/reference/l2lflow/:

- `import_checkpoints.npz`: the state_dicts exactly as `torch.load(..., weights_only=True)` reads the saved files
  (`weights` of each `Flow.save` file; trafo.pt as it is), packed by packed_state_dicts.py under the names
  `causal/flows/flowXX_final` and `causal/trafo` (the energy flow's `weights` are energy_flow.npz's, checked);
- `import_cases.npz`: the incident energies, the recorded noise, the generated layer energies and energy-flow
  logits, the layer flows' samples (transformed voxels), the per-layer sums of the generated showers (GeV, the
  reference's inverse voxel transform, voxels below the 15.15 keV cut left out as its convert_challenge.py -i
  does, and the few whose sample lies beyond |x| = ln(0.99 / 0.01), where calozoo's inverse logit clamps and the
  reference's does not) and the log-densities;
- `import_fixtures.json`: sizes, seeds, versions, the saved `hyperparameter` entries.
"""

from __future__ import annotations

import json
import sys
import tempfile
import types
from importlib import metadata
from pathlib import Path

import numpy as np
import yaml
from make_caloflow_fixtures import extract_reference, fixture_options, on_grid
from make_l2lflow_fixtures import NFLOWS_COMMIT, NFLOWS_REPOSITORY, REFERENCE_COMMIT, REFERENCE_REPOSITORY, randomize
from packed_state_dicts import pack

REFERENCE_FILES = ("src/flow.py", "src/torch_util.py", "src/preprocessing.py", "src/generator.py",
                   "src/data_util.py", "src/postprocessing.py", "conf/causal.yaml", "conf/energy.yaml")
OUT = Path(__file__).resolve().parent / "l2lflow"

DATA_DIM = (1, 9, 16)  # DS2 layers: 9 radial x 16 angular bins, after the reference's axis swap
N_LAYERS = 45
ROWS = 1
DISTINCT = 6  # layers 0..5 drawn in full (their context channels differ: min(5, i) + 2)
# One block and one U-Net level: 45 flows of 40 tensors each already take seconds to build in TensorFlow; the
# per-transform comparisons at 2 blocks and 2 levels are test_l2lflow_reference.py's.
FLOW = {"squeeze": [1, 2], "num_blocks": 1, "num_layers_cond": 5, "out_features_embed": 2,
        "subnet_args": {"hidden": 1, "downsamples": [[9, 8]]}}
ENERGY = {"num_blocks": 2, "hidden_features": 8, "num_layers": 1, "num_bins": 8}
ENERGY_SCALE = 0.015384615385  # calozoo's registered DS2 scale (1 / 65 GeV); the reference's DS3 conf has 1 / 63.6065
LAYER_MAXIMA_GEV = [2.0 ** (4 + k % 3) for k in range(N_LAYERS)]  # large: few generated voxels fall below the cut
INCIDENT_GEV = [[20.0]]
NOISE_SCALE, NOISE_GRID = 0.25, 2.0**-8
CUT_GEV = 1.515e-5  # conf/causal.yaml's energy_threshold; convert_challenge.py -i applies it to generated showers
CLAMP_LOGIT = float(np.log(0.99 / 0.01))  # beyond it calozoo clamps the voxels' inverse logit, the reference does not
SEED = 23


def stub_unused_imports() -> None:
    """Modules that generator.py imports but never uses here (h5py for the data files, scipy for the ILD spline)."""
    for name in ("h5py", "scipy", "scipy.interpolate"):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    sys.modules["scipy.interpolate"].__dict__.setdefault("CubicSpline", None)


def configurations(folder: Path) -> tuple[dict, dict]:
    """conf/causal.yaml and conf/energy.yaml at the fixture's sizes (everything else as the reference's)."""
    causal = yaml.safe_load((folder / "conf/causal.yaml").read_text())
    energy = yaml.safe_load((folder / "conf/energy.yaml").read_text())
    subnet = {**causal["flow"]["subnet_args"], **FLOW["subnet_args"]}
    causal["flow"].update({**FLOW, "subnet_args": subnet})
    energy["flow"].update(ENERGY)
    energy["dataset"]["samples_trafo"][0] = ["Affine", ENERGY_SCALE]
    for conf in (causal, energy):
        conf["dataset"]["data_file"] = "training-data-not-needed.h5"
    return causal, energy


def soften(flow, torch) -> None:
    """Scales the `randomize`d weights so that the samples stay where calozoo's inverse logit does not clamp
    (|x| < 4.6): the U-Nets' output convolutions by 1/16, the LU entries by 1/4, the ActNorm log-scales and the
    LU diagonals' raw values made >= 0 (shrinking, not growing, in the sampling direction). Powers of two and signs:
    the weights stay float16-exact."""
    with torch.no_grad():
        for name, parameter in flow.named_parameters():
            if ".decoder_blocks.0.5." in name:
                parameter.mul_(0.0625)
            elif name.endswith(("lower_entries", "upper_entries")):
                parameter.mul_(0.25)
            elif name.endswith(("log_scale", "unconstrained_upper_diag")):
                parameter.abs_()


def layer_flows(reference, conf: dict, torch, generator) -> list:
    """The 45 reference ConvFlows: layers < DISTINCT drawn in full, the others layer DISTINCT - 1's U-Nets and
    embedding with their own ActNorm and LU weights."""
    flow_conf = {k: v for k, v in conf.items() if k != "class"}
    flows = [reference.ConvFlow(DATA_DIM, i, flow_conf) for i in range(N_LAYERS)]
    for i, flow in enumerate(flows):
        if i >= DISTINCT:
            flow.load_state_dict(flows[DISTINCT - 1].state_dict())
            keep = {name: p.clone() for name, p in flow.named_parameters() if "transform_net" in name
                    or name.startswith("embedding_net")}
        randomize(flow, torch, generator)
        soften(flow, torch)
        if i >= DISTINCT:
            with torch.no_grad():
                for name, parameter in flow.named_parameters():
                    if name in keep:
                        parameter.copy_(keep[name])
                for name, buffer in flow.named_buffers():
                    if name.startswith("transform.") and "transform_net" in name and buffer.is_floating_point():
                        buffer.copy_(flows[DISTINCT - 1].state_dict()[name])
        flow.eval()
    return flows


def write_folders(folder: Path, reference, preprocessing, causal: dict, energy: dict, torch, generator) -> None:
    """causal/ and energy/ as the reference's training leaves them, plus the generator's trafo.pt."""
    for run, conf in (("causal", causal), ("energy", energy)):
        (folder / run / "flows").mkdir(parents=True)
        (folder / run / "conf.yaml").write_text(yaml.safe_dump(conf))
    for i, flow in enumerate(layer_flows(reference, causal["flow"], torch, generator)):
        flow.save(str(folder / f"causal/flows/flow{i:02d}_final.pt"))
    energy_flow = reference.MAFlow((N_LAYERS,), {k: v for k, v in energy["flow"].items() if k != "class"})
    with np.load(OUT / "energy_flow.npz") as stored:  # make_l2lflow_fixtures.py's energy flow, of the same sizes
        energy_flow.load_state_dict({key: torch.from_numpy(stored[key]).to(value.dtype)
                                     for key, value in energy_flow.state_dict().items()})
    energy_flow.eval()
    energy_flow.save(str(folder / "energy/flows/flow.pt"))
    layers = torch.rand((2, N_LAYERS, *DATA_DIM[1:]), generator=generator) * 0.5
    layers[0, :, 0, 0] = torch.tensor(LAYER_MAXIMA_GEV)
    samples_trafo = preprocessing.compose(causal["dataset"]["samples_trafo"])
    samples_trafo(layers)  # as generator.py: the NormLayer takes its maxima from the first data it sees
    torch.save(samples_trafo.state_dict(), folder / "causal/trafo.pt")


def generate(generator_module, folder: Path, torch, rng) -> dict:
    """The reference Generator on the folders, its base draws replaced by recorded noise; what each flow saw."""
    import flow as flow_module

    reference = generator_module.Generator(str(folder / "causal"), str(folder / "energy"), veto=None)
    reference.eval()
    noises, records = [], {"energy": [], "layers": []}
    randn = flow_module.torch.randn

    def recorded_randn(*shape, **kwargs):
        noise = on_grid(NOISE_SCALE * randn(*shape, generator=rng, dtype=torch.float64), NOISE_GRID)
        noises.append(noise)
        return noise

    def recording(flow, store):
        sample = flow.sample

        def wrapped(context):
            out = sample(context)
            store.append((context, out))
            return out
        flow.sample = wrapped

    recording(reference.energy_flow, records["energy"])
    for causal_flow in reference.causal_flows:
        recording(causal_flow, records["layers"])
    flow_module.torch.randn = recorded_randn
    try:
        with torch.no_grad():
            showers, energies = reference(torch.tensor(INCIDENT_GEV))
    finally:
        flow_module.torch.randn = randn
    with torch.no_grad():
        (condition, logits), = records["energy"]
        layer_log_prob = torch.stack([flow(out, context) for flow, (context, out)
                                      in zip(reference.causal_flows, records["layers"])], dim=1)
        energy_log_prob = reference.energy_flow(logits, condition)
    transformed = torch.cat([out for _, out in records["layers"]], dim=1)
    assert torch.all(logits.abs() < 13.8), "a layer-energy sample where calozoo's inverse logit clamps"
    inside = (transformed.abs() <= CLAMP_LOGIT) & (showers >= CUT_GEV)
    kept = torch.where(inside, showers, torch.zeros_like(showers))
    return {"incident_gev": torch.tensor(INCIDENT_GEV), "energy_noise": noises[0],
            "layer_noise": torch.stack(noises[1:], dim=1), "energy_logits": logits, "layer_energies_gev": energies,
            "transformed": transformed, "layer_sums_gev": kept.sum(dim=(2, 3)),
            "energy_log_prob": energy_log_prob, "layer_log_prob": layer_log_prob,
            "log_prob": energy_log_prob + layer_log_prob.sum(dim=1)}


def main() -> None:
    options = fixture_options(__doc__, REFERENCE_REPOSITORY, OUT)
    stub_unused_imports()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for sub in ("src", "conf"):
            (folder / sub).mkdir()
        extract_reference(options.reference_git_dir, folder, REFERENCE_COMMIT, REFERENCE_FILES)
        sys.path.insert(0, str(folder / "src"))
        import flow as reference
        import generator as generator_module
        import preprocessing
        import torch

        torch.set_default_dtype(torch.float64)
        torch.manual_seed(SEED)
        rng = torch.Generator().manual_seed(SEED)
        causal, energy = configurations(folder)
        run = folder / "run"
        write_folders(run, reference, preprocessing, causal, energy, torch, rng)
        cases = generate(generator_module, run, torch, rng)
        saved = {str(path.relative_to(run).with_suffix("")): torch.load(path, weights_only=True)
                 for path in sorted(run.rglob("*.pt"))}
        hyperparameters = {name: value["hyperparameter"] for name, value in saved.items()
                           if name in ("causal/flows/flow00_final", "causal/flows/flow44_final", "energy/flows/flow")}
        states = {name: {k: v.numpy() for k, v in value.get("weights", value).items()}
                  for name, value in saved.items() if name != "energy/flows/flow"}
        with np.load(OUT / "energy_flow.npz") as stored:
            energy_weights = saved["energy/flows/flow"]["weights"]
            assert all(np.array_equal(stored[k], v.numpy()) for k, v in energy_weights.items())
    out = options.out
    np.savez_compressed(out / "import_checkpoints.npz", **pack(states))
    np.savez_compressed(out / "import_cases.npz", **{k: v.detach().numpy() for k, v in cases.items()})
    meta = {"reference": {"repository": REFERENCE_REPOSITORY, "commit": REFERENCE_COMMIT, "files": REFERENCE_FILES,
                          "nflows_repository": NFLOWS_REPOSITORY, "nflows_commit": NFLOWS_COMMIT},
            "libraries": {"torch": torch.__version__, "nflows": metadata.version("nflows"), "numpy": np.__version__,
                          "python": sys.version.split()[0]},
            "data_dim": DATA_DIM, "rows": ROWS, "distinct_layers": DISTINCT, "flow": FLOW, "energy_flow": ENERGY,
            "energy_scale": ENERGY_SCALE, "layer_maxima_gev": LAYER_MAXIMA_GEV, "incident_gev": INCIDENT_GEV,
            "noise_scale": NOISE_SCALE, "noise_grid": NOISE_GRID, "seed": SEED, "hyperparameter": hyperparameters,
            "written_by": "tests/reference/make_l2lflow_import_fixtures.py"}
    (out / "import_fixtures.json").write_text(json.dumps(meta, indent=1) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("import_*"))}
    print(f"wrote {sizes} ({sum(sizes.values())} bytes) to {out}")


if __name__ == "__main__":
    main()
