"""Triage on the latent map: colour and filter by OOD, recon MSE, SNR; no all-blank colourings."""
import numpy as np
import pytest

from twinviz.app import triage
from twinviz.app.latent_map import LatentMap


def test_the_map_is_coloured_by_ood_and_reconstruction_mse(state):
    d = state.data
    assert d.ood is not None and d.recon_mse is not None  # the sample has both
    view = LatentMap(state)
    for name in ("OOD", "recon MSE"):
        assert name in view.colour_select.options
    np.testing.assert_array_equal(view._points("pca", "OOD").dimension_values("value"), d.ood_flags().astype(float))
    np.testing.assert_allclose(view._points("pca", "recon MSE").dimension_values("value"), d.recon_mse, rtol=1e-6)


def test_snr_is_offered_when_the_data_carry_flux_errors(state, monkeypatch):
    d = state.data
    err = np.full(d.flux.shape, 0.01, dtype=np.float32)
    monkeypatch.setattr(d, "flux_err", err)
    monkeypatch.setattr(triage, "_cache", type(triage._cache)())
    snr = triage.colour_values(d, "SNR") if "SNR" in triage.colour_choices(d) else None
    assert snr is not None
    np.testing.assert_allclose(snr, np.nanmedian(d.flux / err, axis=1), rtol=1e-5)


def test_abundances_known_for_almost_no_star_are_not_offered(state, monkeypatch):
    d = state.data
    labels = dict(d.labels)
    mostly_blank = np.full(d.n_stars, np.nan, dtype=np.float32)
    mostly_blank[:2] = 0.1  # 2 of 120 stars
    labels["[Mg/Fe]"] = mostly_blank
    monkeypatch.setattr(d, "labels", labels)
    choices = triage.colour_choices(d)
    assert "[Mg/Fe]" not in choices and "[Si/Fe]" in choices and "Teff" in choices


def test_the_map_can_show_only_stars_out_of_distribution(state, monkeypatch):
    d = state.data
    flags = np.zeros(d.n_stars, dtype=bool)
    flags[[3, 7, 11]] = True
    monkeypatch.setattr(d, "_ood_flags", flags)
    view = LatentMap(state)
    assert len(view._points("pca", "Teff", show="ood")) == 3
    assert len(view._points("pca", "Teff", show="in")) == d.n_stars - 3
    assert len(view._points("pca", "Teff", show="all")) == d.n_stars
    assert list(view._hover_layer("pca", "Teff", show="ood").dimension_values("star")) == [
        str(v) for v in d.star_ids[[3, 7, 11]]]


def test_the_map_can_be_filtered_to_a_range_of_its_colouring(state):
    d = state.data
    view = LatentMap(state)
    state.colour_by = "recon MSE"
    lo, hi = view.value_filter.value
    mse = d.recon_mse
    assert (lo, hi) == pytest.approx((float(np.nanmin(mse)), float(np.nanmax(mse))))
    assert len(view._points("pca", "recon MSE", within=(lo, hi))) == d.n_stars  # full range: all stars
    cut = float(np.median(mse))
    shown = view._points("pca", "recon MSE", within=(lo, cut))
    assert len(shown) == int((mse <= cut).sum()) and np.nanmax(shown.dimension_values("value")) <= cut
    state.colour_by = "Teff"  # a new colouring starts from its whole range again
    assert view.value_filter.value == pytest.approx((float(d.teff.min()), float(d.teff.max())))
