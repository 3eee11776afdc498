"""The app on survey-like data (no synthesizer provenance, masks, flux_err, string ids, no groups):
the observed spectrum is the truth where one exists, masked pixels are gaps, flux_err a band,
and out-of-distribution stars carry their numbers in the swap explorer's badge and the twin table."""
import numpy as np
import pytest

from twinviz.app.loading import build_app_data
from twinviz.app.state import ExplorerState
from twinviz.app.swap import SwapExplorer
from twinviz.app.twin_table import TwinTable, neighbour_table
from twinviz.latents.ood import write_validation_stats
from twinviz.spectra.dataset import save_spectra
from twinviz.testing import survey_sample


@pytest.fixture(scope="module")
def survey_app(tmp_path_factory):
    """A survey-like dataset and an untrained model whose Teff range (4300–5500 K) leaves some
    of its stars (4100–5400 K) outside; with validation stats unless asked not to."""
    import torch

    from twinviz.model import FaderNetwork, ModelConfig

    out = tmp_path_factory.mktemp("survey-app")
    ds = survey_sample(30, seed=4)
    data = save_spectra(ds, out / "survey.nc")
    torch.manual_seed(0)
    flux = ds["flux"].values
    model = FaderNetwork(ModelConfig(n_pixels=flux.shape[1], grid_id="apogee-aspcap-dr12", latent_dim=6,
                                     basis_dim=8, hidden=[16], adversary_hidden=[8], teff_range=[4300.0, 5500.0]))
    model.set_flux_normalisation(flux.mean(axis=0), float(flux.std()))
    bare = model.save_pretrained(out / "bare")
    with_stats = model.save_pretrained(out / "model")
    write_validation_stats(with_stats, np.full(100, 1e-6), source="test")  # every star here is far worse
    return ds, data, bare, with_stats


def test_the_observed_spectrum_is_the_truth_with_gaps_and_band(survey_app):
    ds, data, _, model_dir = survey_app
    d = build_app_data(model_dir, data)
    assert not d.is_synthetic and d.mask is not None and d.flux_err is not None
    star = int(np.flatnonzero((d.teff > 4400) & (d.teff < 5400))[0])
    state = ExplorerState(d, star=star)
    view = SwapExplorer(state)
    mask = ds["mask"].values[star]
    gaps = len(d.segments) - 1
    # the swap panel's observed line: NaN exactly at the masked pixels (and the chip gaps)
    observed = np.asarray(view.sources["swap"].data["observed"], dtype=float)
    assert np.isnan(observed).sum() == mask.sum() + gaps
    np.testing.assert_array_equal(observed[np.isfinite(observed)], ds["flux"].values[star][~mask])
    band = view.sources["observed_band"].data
    assert np.isfinite(band["y"]).sum() == 2 * (~mask).sum()
    upper = np.asarray(band["y"], dtype=float)[:np.flatnonzero(np.isnan(band["y"]))[0]]
    run = len(upper) // 2
    first = np.flatnonzero(~mask)[:run]
    np.testing.assert_allclose(upper[:run], ds["flux"].values[star][first] + ds["flux_err"].values[star][first],
                               rtol=1e-6)
    # sliders on the star's own labels: the top panel's truth is the observed spectrum, with its band
    state.param.update(teff=float(d.teff[star]), logg=float(d.logg[star]))
    assert view.truth_label == "star observed"
    truth = np.asarray(view.sources["spectrum"].data["truth"], dtype=float)
    np.testing.assert_array_equal(np.isnan(truth), np.isnan(observed))
    assert np.isfinite(view.sources["truth_band"].data["y"]).sum() == 2 * (~mask).sum()
    # away from any star's labels there is no truth, and no band
    state.param.update(teff=5490.0, logg=1.01)
    assert view.truth_label.startswith("no truth") and len(view.sources["truth_band"].data["y"]) == 0


def test_ood_badge_and_twin_table_column_carry_the_numbers(survey_app):
    ds, data, _, model_dir = survey_app
    d = build_app_data(model_dir, data)
    cold = int(np.flatnonzero(d.teff < 4300)[0])
    state = ExplorerState(d, star=cold)
    view = SwapExplorer(state)
    assert view.ood_badge.visible
    assert f"star {d.star_ids[cold]}: Teff {d.teff[cold]:.0f} K outside the training range 4300–5500 K" \
        in view.ood_badge.object
    assert "× validation p99 1e-06" in view.ood_badge.object  # the stored distribution is used
    table = neighbour_table(d, cold, 5)
    assert "OOD" in table and all(v.startswith("⚠") for v in table["OOD"])  # all far worse than 1e-6
    assert "true twin" not in table  # no groups: nothing to tick
    TwinTable(state)  # builds on string ids and masks


def test_a_model_without_stats_is_judged_on_labels_only_and_says_so(survey_app):
    ds, data, bare, _ = survey_app
    d = build_app_data(bare, data)
    inside = int(np.flatnonzero(d.teff > 4400)[0])
    cold = int(np.flatnonzero(d.teff < 4300)[0])
    assert d.ood_text(inside) == ""
    assert d.ood_text(cold).endswith("label range only: the model has no validation stats (validation_stats.json)")
    assert d.ood_flags().tolist() == (d.teff < 4300).tolist()
    view = SwapExplorer(ExplorerState(d, star=inside))
    twin = view.state.compared_twin()
    assert view.ood_badge.visible == bool(d.ood_text(twin))


def test_metrics_tab_says_twin_ranks_are_absent_without_groups(survey_app):
    from twinviz.app.metrics import MetricsView
    from twinviz.evaluation import evaluate

    ds, data, _, model_dir = survey_app
    d = build_app_data(model_dir, data)
    report = evaluate(d.model, ds).to_dict()
    assert report["n_with_twin"] == 0 and report["methods"][0]["mse"] > 0
    view = MetricsView(ExplorerState(d))
    view._render(report)
    assert "Twin ranks: absent" in view.status.object and "not zero" in view.status.object
    assert view.table.visible and not view.curve.visible  # the table, no rank curve
