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
    assert text.splitlines()[0].startswith("rank,star,distance,Teff,logg")
    assert len(text.strip().splitlines()) == state.k + 1
    assert view.download.filename == f"twins_of_star_{state.star_id}.csv"
