"""Open-cluster-like label sets and datasets (issue 13, part 1)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from twinviz.spectra.clusters import MEMBER_LOGG_SIGMA, draw_cluster_labels, parse_group_sizes
from twinviz.spectra.simulation import simulate


def _track_residual_sd(teff, logg):
    """Scatter of logg about the giant-branch line (1.0 dex at 4000 K to 3.5 dex at 5500 K),
    over the stars well inside the logg range (no reflection at its edges)."""
    inside = (logg > 1.4) & (logg < 3.1)
    return float(np.std(logg[inside] - (1.0 + 2.5 * (teff[inside] - 4000) / 1500)))


def test_cluster_sizes_field_stars_and_group_ids_follow_the_request():
    lab = draw_cluster_labels(40, (5, 12), field_fraction=0.5, seed=3)
    group, field = lab["group"], lab["field"]
    sizes = np.bincount(group[~field])
    assert sizes.size == 40 and sizes.min() >= 5 and sizes.max() <= 12 and np.unique(sizes).size > 3
    # field stars: as many as the members (F = 0.5), each with a group id of its own
    assert abs(field.sum() - (~field).sum()) <= 1
    assert np.unique(group[field]).size == field.sum() and group[field].min() == 40
    # members are consecutive rows
    assert np.all(np.diff(group) >= 0)


def test_members_share_chemistry_and_lie_on_one_track_field_stars_do_not():
    lab = draw_cluster_labels(30, (20, 30), field_fraction=0.4, seed=5)
    group, field = lab["group"], lab["field"]
    for g in range(30):
        members = group == g
        assert np.ptp(lab["fe_h"][members]) == 0 and np.ptp(lab["x_fe"][members], axis=0).max() == 0
        assert np.ptp(lab["teff"][members]) > 300  # members span the giant branch…
        # …on one track: scatter about their own line is the member scatter, not the band's
        assert _track_residual_sd(lab["teff"][members], lab["logg"][members]) < 2 * MEMBER_LOGG_SIGMA
    assert _track_residual_sd(lab["teff"][field], lab["logg"][field]) > 0.25
    assert np.unique(lab["x_fe"][field], axis=0).shape[0] == field.sum()  # each its own chemistry
    # clusters differ from each other: their tracks are offset
    offsets = [np.mean(lab["logg"][group == g] - (1.0 + 2.5 * (lab["teff"][group == g] - 4000) / 1500))
               for g in range(30)]
    assert np.std(offsets) > 0.1


@pytest.mark.parametrize("population,box", [("dwarfs", ((4400, 6800), (4.0, 5.0))),
                                            ("mixed", ((4000, 6800), (1.0, 5.0)))])
def test_other_populations_stay_in_their_boxes(population, box):
    lab = draw_cluster_labels(10, (5, 10), field_fraction=0.3, seed=1, population=population)
    (t_lo, t_hi), (g_lo, g_hi) = box
    assert t_lo <= lab["teff"].min() and lab["teff"].max() <= t_hi
    assert g_lo <= lab["logg"].min() and lab["logg"].max() <= g_hi
    if population == "mixed":
        assert 0.2 < lab["dwarf"].mean() < 0.8


def test_same_arguments_same_labels_and_bad_arguments_say_why():
    a = draw_cluster_labels(5, (2, 4), 0.2, seed=9)
    b = draw_cluster_labels(5, (2, 4), 0.2, seed=9)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert parse_group_sizes("5-50") == (5, 50) and parse_group_sizes("8") == (8, 8)
    for bad in ("50-5", "0-3", "a-b", "1-2-3"):
        with pytest.raises(ValueError, match="MIN-MAX"):
            parse_group_sizes(bad)
    with pytest.raises(ValueError, match="field_fraction"):
        draw_cluster_labels(5, (2, 4), 1.0)


def test_simulate_makes_a_cluster_dataset_and_records_it():
    ds = simulate(3, seed=2, group_sizes=(4, 6), field_fraction=0.25)
    n_members = int((ds["group"].values < 3).sum())
    assert 12 <= n_members <= 18 and ds.attrs["group_sizes"] == "4-6"
    assert ds.attrs["n_field"] == ds.sizes["star"] - n_members and ds.attrs["field_fraction"] == 0.25
    assert "group_size" not in ds.attrs
    flux = ds["flux"].values
    assert np.all(np.isfinite(flux)) and flux.max() <= 1.0
    # members of one cluster share the stored chemistry
    members = ds["group"].values == 0
    assert np.ptp(ds["x_fe"].values[members], axis=0).max() == 0


def test_simulate_cli_clusters(tmp_path):
    from twinviz.spectra.dataset import load_spectra

    out = tmp_path / "clusters.nc"
    cmd = [sys.executable, "-m", "twinviz", "simulate", "--pairs", "3", "--group-sizes", "3-5",
           "--field-fraction", "0.5", "--seed", "4", "--out", str(out), "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3 clusters of 3-5 stars" in result.stdout
    ds = load_spectra(out)
    assert ds.attrs["n_field"] == (ds["group"].values >= 3).sum() > 0
    bad = subprocess.run(cmd[:7] + ["9-3"] + cmd[8:], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--group-sizes" in bad.stderr and "Fix:" in bad.stderr
