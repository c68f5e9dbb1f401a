"""`calozoo generate --shard i/n`: shards tile the energy list exactly and draw independent random streams."""

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.models.base import shard_rows, shard_seed
from calozoo_tools.cli import main

NAME = "caloflow-ds1-photon-student"



def _generate(tmp_path, filename, *options):
    output = tmp_path / filename
    result = CliRunner().invoke(main, ["generate", NAME, "-n", "50", "--batch-size", "20", "--seed", "5",
                                       "-o", str(output), *options])
    assert result.exit_code == 0, result.output
    with h5py.File(output, "r") as handle:
        return handle["incident_energies"][()], handle["showers"][()], dict(handle.attrs)


def test_shards_tile_the_run_with_independent_seeds(tiny_artifact, tmp_path):
    whole_energies, whole_showers, _ = _generate(tmp_path, "all.h5")
    shards = [_generate(tmp_path, f"shard{i}.h5", "--shard", f"{i}/3") for i in range(3)]
    assert [len(e) for e, _, _ in shards] == [16, 17, 17]
    assert [a["first_row"] for _, _, a in shards] == [0, 16, 33] and shards[2][2]["shard"] == "2/3"
    np.testing.assert_array_equal(np.concatenate([e for e, _, _ in shards]), whole_energies)
    joined = np.concatenate([s for _, s, _ in shards])
    assert joined.shape == whole_showers.shape == (50, 368)
    assert not np.array_equal(joined[:16], whole_showers[:16]), "a shard must not reuse the whole run's stream"
    again = _generate(tmp_path, "again.h5", "--shard", "1/3")[1]
    np.testing.assert_array_equal(again, shards[1][1])


def test_shard_rows_partition_and_seeds_are_distinct():
    for n_rows, count in [(10, 3), (1_000_000, 7), (5, 5), (2, 3)]:
        slices = [shard_rows(n_rows, i, count) for i in range(count)]
        assert slices[0].start == 0 and slices[-1].stop == n_rows
        assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    seeds = {tuple(shard_seed(0, batch, index, 4).numpy()) for index in range(4) for batch in range(200)}
    assert len(seeds) == 800
    assert tuple(shard_seed(3, 2).numpy()) == (3, 2)


@pytest.mark.parametrize("shard, message", [("3/3", "needs n >= 1 and 0 <= i < n"), ("a/b", "must look like i/n"),
                                            ("1/0", "needs n >= 1"), ("2", "must look like i/n")])
def test_bad_shard_is_one_error_and_no_file(tiny_artifact, tmp_path, shard, message):
    output = tmp_path / "out.h5"
    result = CliRunner().invoke(main, ["generate", NAME, "-n", "10", "-o", str(output), "--shard", shard])
    assert result.exit_code != 0 and message in result.output
    assert list(tmp_path.glob("*.h5")) == [] and not output.exists()
