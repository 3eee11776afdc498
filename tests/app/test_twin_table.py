"""Twin table: the selected star's L1 neighbours, comparison, CSV export."""
import numpy as np

from twinviz.app.twin_table import TwinTable, neighbour_table


def test_selecting_a_star_updates_the_twin_table(state):
    view = TwinTable(state)
    first = view.table.value.copy()
    state.star = 20
    table = view.table.value
    pos, dist = state.data.neighbours(20, state.k)
    assert list(table["star"]) == [str(v) for v in state.data.star_ids[pos]]
    np.testing.assert_allclose(table["distance"], np.round(dist, 4))
    assert not table.equals(first)
    assert list(table["rank"]) == list(range(1, state.k + 1))


def test_table_columns_and_true_twin_marker(app_data):
    pos = 6
    table = neighbour_table(app_data, pos, 119)
    assert {"rank", "star", "distance", "Teff", "logg", "Δ[Fe/H]", "true twin"} <= set(table.columns)
    marked = table[table["true twin"] == "✓"]
    assert list(marked["star"]) == [str(app_data.star_ids[7])]
    assert float(marked["Δ[Fe/H]"].iloc[0]) == 0.0


def test_k_changes_the_number_of_rows(state):
    view = TwinTable(state)
    state.k = 4
    assert len(view.table.value) == 4


def test_choosing_a_row_compares_that_neighbour(state):
    view = TwinTable(state)
    view.table.selection = [2]
    chosen = int(state.data.neighbours(state.star, state.k)[0][2])
    assert state.twin == chosen
    d = state.data
    twin = np.asarray(view.source.data["twin"], dtype=float)
    np.testing.assert_array_equal(twin[np.isfinite(twin)], d.flux[chosen])
    diff = np.asarray(view.source.data["difference"], dtype=float)
    np.testing.assert_allclose(diff[np.isfinite(diff)], d.flux[chosen] - d.flux[state.star], atol=1e-7)
    assert str(d.star_ids[chosen]) in view.figures["spectrum"].title.text


def test_csv_export_holds_the_table(state):
    view = TwinTable(state)
    text = view._csv().getvalue()
    assert text.splitlines()[0].startswith("rank,star,distance,twin pct,random ≤ d,Teff,logg")
    assert len(text.strip().splitlines()) == state.k + 1
    assert view.download.filename == f"twins_of_star_{state.star_id}.csv"


def test_without_calibration_there_is_no_p_twin_column_and_the_note_says_why(state):
    view = TwinTable(state)
    assert "P(twin)" not in view.table.value.columns
    assert "not available" in view.p_note.object and "twinviz calibrate" in view.p_note.object


def _calibrated_copy(sample_paths, tmp_path, tamper=False, distance="z"):
    import json
    import shutil

    from twinviz.latents import load_latents
    from twinviz import files as runfiles
    from twinviz.twins.confidence import fit_calibration, save_calibration, weights_sha256

    model_dir, data, latents = sample_paths
    copy = shutil.copytree(model_dir, tmp_path / "model")
    lat = load_latents(latents)
    cal = fit_calibration(lat["z"].values, lat["group"].values, lat["teff"].values, lat["logg"].values, k=5,
                          model_sha256=weights_sha256(copy), data="sample", distance=distance)
    path = save_calibration(cal, copy)
    if tamper:
        saved = json.loads(path.read_text())
        saved["model_sha256"] = "f" * 64
        path.write_text(json.dumps(saved))
    assert (copy / runfiles.MODEL_CALIBRATION).is_file()
    return copy, data, latents


def test_a_calibrated_model_adds_p_twin_per_row(sample_paths, tmp_path):
    from twinviz.app.loading import load_app_data
    from twinviz.app.state import ExplorerState

    data = load_app_data(*_calibrated_copy(sample_paths, tmp_path))
    view = TwinTable(ExplorerState(data))
    table = view.table.value
    values = [float(v) for v in table["P(twin)"]]
    assert all(0.0 <= v <= 1.0 for v in values) and values == sorted(values, reverse=True)
    pos, dist = data.neighbours(0, len(values))
    np.testing.assert_allclose(values, np.round(data.calibration.probability(dist), 3))
    assert "isotonic calibration on sample" in view.p_note.object


def test_p_twin_is_na_where_the_star_or_its_neighbour_is_out_of_distribution(sample_paths, tmp_path):
    from twinviz.app.loading import load_app_data
    from twinviz.app.twin_table import neighbour_table
    from twinviz.latents.ood import OODCriteria

    data = load_app_data(*_calibrated_copy(sample_paths, tmp_path))
    star = 0
    pos, _ = data.neighbours(star, 8)
    # judge by a Teff range that holds the star but not every neighbour
    teffs = np.sort(data.teff[pos])
    lo = min(float(data.teff[star]), float(teffs[len(teffs) // 2])) - 1e-3
    hi = max(float(data.teff[star]), float(teffs[len(teffs) // 2])) + 1e-3
    object.__setattr__(data, "ood", OODCriteria(teff_range=(lo, hi), logg_range=(-10.0, 10.0)))
    table = neighbour_table(data, star, 8)
    flagged = [bool(o) for o in table["OOD"]]
    assert any(flagged) and not all(flagged)
    assert all(p_twin == "n/a" for p_twin, flag in zip(table["P(twin)"], flagged) if flag)
    assert any(p_twin != "n/a" for p_twin, flag in zip(table["P(twin)"], flagged) if not flag)
    assert "out of distribution" in table.attrs["p_twin_note"]


def test_a_calibration_of_another_distance_gives_no_p_twin_and_says_why(sample_paths, tmp_path):
    """A calibration of distances in a twin metric is refused for raw-z distances (the metric
    removed, say), with the fix named; the table has no P(twin) column."""
    from twinviz.app.loading import load_app_data
    from twinviz.app.state import ExplorerState

    data = load_app_data(*_calibrated_copy(sample_paths, tmp_path, distance="z in twin metric 0123456789ab"))
    view = TwinTable(ExplorerState(data))
    assert data.calibration is None and "P(twin)" not in view.table.value.columns
    assert "calibrated on z in twin metric 0123456789ab" in view.p_note.object and "twinviz calibrate" in view.p_note.object


def test_a_calibration_of_other_weights_is_refused_and_the_app_still_opens(sample_paths, tmp_path):
    from twinviz.app.loading import load_app_data
    from twinviz.app.state import ExplorerState

    data = load_app_data(*_calibrated_copy(sample_paths, tmp_path, tamper=True))
    view = TwinTable(ExplorerState(data))
    assert data.calibration is None and "P(twin)" not in view.table.value.columns
    assert "not shown" in view.p_note.object and "model_sha256" in view.p_note.object


def test_the_chemical_difference_decodes_both_stars_at_the_stars_teff_logg(state):
    from twinviz.app.twin_table import N_LINES

    view = TwinTable(state)
    view.table.selection = [1]
    d, s, twin = state.data, state.star, state.twin
    expected = d.decode(twin, float(d.teff[s]), float(d.logg[s])).astype(float) - d.decode(s, float(d.teff[s]),
                                                                                            float(d.logg[s]))
    chemical = np.asarray(view.source.data["chemical"], dtype=float)
    np.testing.assert_allclose(chemical[np.isfinite(chemical)], expected, atol=1e-6)
    marks = view.line_source.data
    assert len(marks["x"]) == N_LINES
    biggest = float(np.max(np.abs(expected)))
    assert abs(abs(marks["y"][0]) - biggest) < 1e-6  # the first named line is the largest difference
    assert f"neighbour {d.star_ids[twin]} − star {d.star_ids[s]}" in view.lines.object
    assert view.lines.object.count("\n| ") == N_LINES + 1  # header + one row per line
