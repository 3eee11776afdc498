"""benchmarks/noise_in_z.py: z's response to each star's own white noise, beside the twins' spread."""
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import noise_in_z  # noqa: E402


def test_the_noise_share_grows_with_flux_err_and_a_noiseless_file_gets_the_twin_rows(tmp_path):
    from twinviz.spectra.dataset import load_spectra, save_spectra
    from twinviz.testing import make_sample

    model_dir, data, _ = make_sample(tmp_path, n_pairs=40)
    ds = load_spectra(data)
    quiet = noise_in_z.noise_table(model_dir, data)  # no flux_err: noiseless
    assert quiet["draws"] == 0 and np.isnan(quiet["noise_share_median"]) and "rank1_noise_whitened" not in quiet
    assert 0 <= quiet["rank1_raw_z"] <= 1 and quiet["twin_share_median"] > 0
    # the invariance term's nuisances move z even in a noiseless file; never more than it spreads ×10
    assert 0 < quiet["nuisance_share_median"] <= quiet["nuisance_share_max"] < 10
    shares = []
    for sigma in (0.002, 0.02):
        noisy = ds.assign(flux_err=(("star", "wavelength"), np.full(ds["flux"].shape, sigma, np.float32)))
        t = noise_in_z.noise_table(model_dir, save_spectra(noisy, tmp_path / f"noisy{sigma}.nc"), draws=2)
        assert t["draws"] == 2 and 0 <= t["rank1_noise_whitened"] <= 1
        assert t["rank1_raw_z"] == quiet["rank1_raw_z"]  # the stars' own z do not change
        shares.append(t["noise_share_median"])
    assert 0 < shares[0] < shares[1]  # ten times the noise moves z more (about 100× in variance)
    assert shares[1] / shares[0] > 20
