"""The twin table's chemical difference and distances, read against a scale (issue 28)."""
import numpy as np

from twinviz.app.chemistry import chemical_scale, lines_markdown
from twinviz.app.twin_table import TwinTable, neighbour_table


def _chemical(view):
    y = np.asarray(view.source.data["chemical"], dtype=float)
    return y[np.isfinite(y)]


def test_the_chemical_difference_is_decoded_inside_the_models_range(state, monkeypatch):
    """A real star at 2 648 K: the sliders are clipped to the model's range, the chemical
    difference was not (the decoder extrapolated)."""
    d = state.data
    monkeypatch.setattr(d, "teff", d.teff.copy())
    d.teff[state.star] = 2648.0
    view = TwinTable(state)
    twin = state.compared_twin()
    lo = d.teff_range[0]
    expected = d.decode(twin, lo, float(d.logg[state.star])).astype(np.float64) - d.decode(
        state.star, lo, float(d.logg[state.star]))
    np.testing.assert_allclose(_chemical(view), expected, atol=1e-6)
    assert "outside the model's training range" in view.lines.object and f"Teff {lo:.0f} K" in view.lines.object


def test_the_chemical_difference_is_read_against_true_twins_and_random_pairs(state):
    view = TwinTable(state)
    scale = chemical_scale(state.data)
    assert scale["twin"] is not None and scale["random"] > scale["twin"]  # the sample's twins are closer
    text = view.lines.object
    assert f"true twins {scale['twin']:.2g}" in text and f"random pairs {scale['random']:.2g}" in text
    assert "near zero for true twins" not in text  # the old claim, contradicted by the numbers


def test_molecular_lines_carry_a_caveat():
    line = {"wavelength": 15300.0, "delta_flux": 0.01, "line_wavelength": 15300.1, "species": "CN",
            "elements": ["C", "N"]}
    text = lines_markdown([line], 2, 1, np.full(10, 0.01), {"twin": 0.003, "random": 0.03, "n_twin": 3,
                                                              "n_random": 3})
    assert "Molecular features (CN)" in text
    atomic = dict(line, species="Fe", elements=["Fe"])
    assert "Molecular" not in lines_markdown([atomic], 2, 1, np.full(10, 0.01), {})


def test_distances_carry_twin_and_random_pair_scales(state):
    table = neighbour_table(state.data, state.star, 10)
    assert list(table.columns[:5]) == ["rank", "star", "distance", "twin pct", "random ≤ d"]
    random = [float(v.rstrip(" %")) for v in table["random ≤ d"]]
    assert random == sorted(random)  # farther neighbours pass more random pairs
    assert all(0 <= v <= 100 for v in random)
    assert all(v.endswith("%") for v in table["twin pct"])
    assert "random non-twin pairs" in table.attrs["p_twin_note"]


def test_out_of_distribution_neighbours_can_be_hidden(state, monkeypatch):
    d = state.data
    pos, _ = d.neighbours(state.star, 3)
    flags = np.zeros(d.n_stars, dtype=bool)
    flags[pos[0]] = True  # the first neighbour is out of distribution
    monkeypatch.setattr(d, "_ood_flags", flags)
    shown = neighbour_table(d, state.star, 5, hide_ood=True)
    assert str(d.star_ids[pos[0]]) not in list(shown["star"]) and len(shown) == 5
    assert list(shown["rank"]) == [2, 3, 4, 5, 6] and "hidden" in shown.attrs["p_twin_note"]
    assert str(d.star_ids[pos[0]]) in list(neighbour_table(d, state.star, 5)["star"])
    view = TwinTable(state)
    assert view.hide_ood.value == (d.ood is not None and not d.is_synthetic)  # on for real data (few OOD)
    monkeypatch.setattr(d, "_ood_flags", np.ones(d.n_stars, dtype=bool))
    assert not TwinTable(state).hide_ood.value  # all OOD: hiding them would empty the table
    view.hide_ood.value = True
    assert str(d.star_ids[pos[0]]) not in list(view.table.value["star"])


def test_the_comparison_title_gives_the_distance_scale(state):
    view = TwinTable(state)
    assert "random pairs ≤ d" in view.figures["spectrum"].title.text


def test_the_comparison_lists_abundance_differences_with_uncertainties(state, monkeypatch):
    from twinviz.app import chemistry

    d = state.data
    view = TwinTable(state)
    twin = state.compared_twin()
    assert f"[Fe/H] {d.fe_h[twin] - d.fe_h[state.star]:+.3f}" in view.lines.object
    assert "no abundance uncertainties" in view.lines.object  # the sample has none
    errors = {"fe_h": np.full(d.n_stars, 0.03), "x_fe": np.full(d.x_fe.shape, 0.04)}
    monkeypatch.setitem(chemistry._errors, d, errors)
    text = chemistry.abundance_differences(d, state.star, twin)
    assert f"± {np.hypot(0.03, 0.03):.3f}" in text and f"± {np.hypot(0.04, 0.04):.3f}" in text
