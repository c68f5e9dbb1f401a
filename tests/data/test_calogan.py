"""The CaloGAN geometry, its HDF5 format (GeV energies, MeV layers) and its synthetic showers."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.data.calogan import flat_to_layers, layers_to_flat, read_calogan, write_calogan
from calozoo.data.files import read_incident_energies, read_showers
from calozoo.data.geometry import CALOGAN_DATASETS, geometry_for_voxels, load_geometry
from calozoo.data.synthetic import synthetic_dataset
from calozoo.errors import ShowerFileError


def random_showers(n=20, seed=0):
    rng = np.random.default_rng(seed)
    energies = rng.uniform(1e3, 1e5, size=(n, 1))
    showers = (rng.exponential(50.0, size=(n, 504)) * (rng.random((n, 504)) < 0.2)).astype(np.float32)
    return energies, showers


def test_geometry_has_the_calogan_layers_cells_and_depths():
    geometry = load_geometry("calogan-gamma")
    assert geometry.n_voxels == 504 and geometry.layer_sizes == (288, 144, 72)
    assert geometry.particle == "gamma" and geometry.evaluation_threshold_mev == 0.01
    assert [layer.shape for layer in geometry.layers] == [(3, 96), (12, 12), (12, 6)]
    assert [(layer.cell_x, layer.cell_y) for layer in geometry.layers] == [(160.0, 5.0), (40.0, 40.0), (40.0, 80.0)]
    assert [layer.depth for layer in geometry.layers] == [90.0, 347.0, 43.0]
    for layer in geometry.layers:  # every layer covers |x|, |y| < 240 mm
        assert layer.n_x * layer.cell_x == 480.0 and layer.n_y * layer.cell_y == 480.0
    assert geometry_for_voxels(504).name == "calogan-eplus"


def test_voxel_index_is_x_major_and_rejects_points_outside():
    layer = load_geometry("calogan-eplus").layers[0]  # 3 x 96 cells of 160 x 5 mm
    index = layer.voxel_index(np.array([-239.0, 0.1, 239.0, 250.0, 0.0]), np.array([-239.0, 0.1, 239.0, 0.0, -241.0]))
    assert index.tolist() == [0, 1 * 96 + 48, 2 * 96 + 95, -1, -1]
    x, y = layer.xy_centres()
    assert layer.voxel_index(x, y).tolist() == list(range(288))


def test_flat_and_layer_arrays_round_trip():
    _, showers = random_showers()
    layers = flat_to_layers(showers)
    assert [a.shape for a in layers] == [(20, 3, 96), (20, 12, 12), (20, 12, 6)]
    assert layers[1][3, 2, 5] == showers[3, 288 + 2 * 12 + 5]
    np.testing.assert_array_equal(layers_to_flat(layers), showers)


def test_file_round_trip_stores_gev_and_reads_mev(tmp_path):
    energies, showers = random_showers()
    path = tmp_path / "eplus.hdf5"
    write_calogan(path, energies, showers, attrs={"synthetic": True})
    with h5py.File(path) as handle:
        np.testing.assert_allclose(handle["energy"][()], energies / 1e3)
        assert handle["layer_2"].shape == (20, 12, 6) and handle["overflow"].shape == (20, 3)
        assert handle.attrs["synthetic"]
    read_e, read_s, overflow = read_calogan(path, with_overflow=True)
    np.testing.assert_allclose(read_e, energies, rtol=1e-12)
    np.testing.assert_array_equal(read_s, showers)
    assert (overflow == 0).all()
    # The generic readers recognise the CaloGAN format.
    generic_e, generic_s = read_showers(path, n_voxels=504, start=5, stop=9)
    np.testing.assert_array_equal(generic_s, showers[5:9])
    np.testing.assert_allclose(read_incident_energies(path), energies, rtol=1e-12)
    with pytest.raises(ShowerFileError, match="504 voxels per shower; expected 368"):
        read_showers(path, n_voxels=368)


def test_bad_files_give_one_clear_error_and_failed_writes_leave_nothing(tmp_path):
    energies, showers = random_showers()
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as handle:
        handle["energy"] = energies / 1e3
        handle["layer_0"] = showers[:, :288].reshape(-1, 3, 96)
    with pytest.raises(ShowerFileError, match=r"missing dataset\(s\) \['layer_1', 'layer_2'\]"):
        read_calogan(path)
    with h5py.File(path, "a") as handle:
        handle["layer_1"] = showers[:, 288:432].reshape(-1, 12, 12)
        handle["layer_2"] = showers[:, 432:].reshape(-1, 6, 12)   # transposed
    with pytest.raises(ShowerFileError, match=r"layer_2: expected shape \(N, 12, 6\)"):
        read_calogan(path)
    target = tmp_path / "out.hdf5"
    negative = showers.copy()
    negative[0, 0] = -1.0
    with pytest.raises(ShowerFileError, match="negative"):
        write_calogan(target, energies, negative)
    with pytest.raises(ShowerFileError, match="incident energies"):
        write_calogan(target, energies[:5], showers)
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize("dataset", CALOGAN_DATASETS)
def test_synthetic_showers_fill_the_calogan_geometry(dataset):
    energies, showers = synthetic_dataset(dataset, 300, seed=2)
    assert showers.shape == (300, 504) and (showers >= 0).all()
    assert ((energies >= 1e3) & (energies <= 1e5)).all()
    geometry = load_geometry(dataset)
    layer_energies = geometry.layer_energies(showers)
    visible = layer_energies.sum(axis=1) / energies[:, 0]
    assert (layer_energies[:, 1] > 0).mean() > 0.95  # the middle layer holds the bulk
    assert (visible < 1.3).all()
    if dataset != "calogan-piplus":
        assert 0.8 < visible.mean() < 1.0
    else:
        assert 0.05 < visible.mean() < 0.5


def test_particles_differ_gamma_starts_later_than_eplus():
    geometry = load_geometry("calogan-eplus")
    fractions = {}
    for dataset in ("calogan-eplus", "calogan-gamma"):
        energies, showers = synthetic_dataset(dataset, 1000, seed=4)
        layers = geometry.layer_energies(showers)
        fractions[dataset] = (layers[:, 0] / layers.sum(axis=1)).mean()
    assert fractions["calogan-gamma"] < 0.8 * fractions["calogan-eplus"]


def test_synthesize_cli_writes_a_calogan_file(tmp_path):
    from calozoo_tools.cli import main

    path = tmp_path / "gamma.hdf5"
    result = CliRunner().invoke(main, ["synthesize", "calogan-gamma", "-n", "30", "-o", str(path), "--seed", "1"])
    assert result.exit_code == 0, result.output
    energies, showers = read_calogan(path)
    assert showers.shape == (30, 504) and (energies >= 1e3).all() and (energies <= 1e5).all()
    with h5py.File(path) as handle:
        assert handle.attrs["synthetic"] and handle["energy"][()].max() <= 100.0
