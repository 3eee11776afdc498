"""Streamed simulation into zarr (simulate_to_zarr, `twinviz simulate --out X.zarr`) and per-star
reads from a file (StarRows): the same values as the in-memory path, bounded by blocks."""
import numpy as np
import pytest
import zarr

from twinviz.cli import main as cli
from twinviz.spectra.dataset import DatasetError, load_spectra, open_spectra
from twinviz.spectra.nuisances import Nuisances
from twinviz.spectra.rows import StarRows
from twinviz.spectra.simulation import simulate, simulate_to_zarr


def _same(a, b):
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert a.attrs == b.attrs


@pytest.mark.parametrize("options", [{}, {"snr": 40.0, "population": "mixed", "chemistry": "galactic",
                                          "nuisances": Nuisances(vbroad=6.0, rv_scatter=0.3, continuum_error=0.01)},
                                     {"group_sizes": (3, 5), "field_fraction": 0.3}])
def test_streamed_zarr_holds_the_in_memory_dataset_bit_for_bit(tmp_path, options):
    path = simulate_to_zarr(tmp_path / "s.zarr", 23, seed=5, chunk=10, star_chunk=4, **options)
    _same(simulate(23, seed=5, **options), load_spectra(path))
    assert zarr.open_group(path)["flux"].chunks[0] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]  # no temporary left behind


def test_streaming_refuses_masks_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"s\.zarr: mask: .*Fix: "):
        simulate_to_zarr(tmp_path / "s.zarr", 5, nuisances="realistic")
    assert list(tmp_path.iterdir()) == []


def test_the_simulate_command_streams_zarr_and_keeps_masks_in_memory(tmp_path, capsys):
    assert cli(["simulate", "--pairs", "70", "--seed", "3", "--snr", "50", "--out", str(tmp_path / "a.zarr"),
                "--no-progress"]) == 0
    assert "wrote 140 spectra" in capsys.readouterr().out
    _same(simulate(70, seed=3, snr=50.0), load_spectra(tmp_path / "a.zarr"))
    # the streamed writer's chunks of 128 stars mark it (the in-memory writer's hold up to 1024)
    assert zarr.open_group(tmp_path / "a.zarr")["flux"].chunks[0] == 128
    assert cli(["simulate", "--pairs", "4", "--masks", "--out", str(tmp_path / "m.zarr"), "--no-progress"]) == 0
    assert bool(load_spectra(tmp_path / "m.zarr")["mask"].values.any())


def test_star_rows_read_one_star_at_a_time_and_keep_only_a_few(tmp_path):
    path = simulate_to_zarr(tmp_path / "s.zarr", 20, seed=1, snr=30.0, star_chunk=8)
    full = load_spectra(path)
    rows = StarRows(path, "flux", keep=3)
    assert rows.shape == full["flux"].shape and len(rows) == 40
    for i in (0, 17, 39, -1, np.int64(5)):
        np.testing.assert_array_equal(rows[i], full["flux"].values[i])
    assert len(rows._rows) == 3 and rows[5] is rows[5]  # the last few reads are kept
    with pytest.raises(ValueError):
        rows[5][0] = 0.0  # shared between sessions: read-only
    with pytest.raises(IndexError):
        rows[40]
    with pytest.raises(TypeError, match="one star at a time"):
        rows[0:3]
    with pytest.raises(DatasetError, match=r"s\.zarr: teff: no \(star, wavelength\) variable.*Fix: "):
        StarRows(path, "teff")
    lazy = open_spectra(path)
    assert lazy["flux"].chunks[0][0] == 8
