"""The sliders' Teff/logg in the page URL: applied from the URL first, written once they rest."""
from __future__ import annotations

import pytest
from panel.io.location import Location

from twinviz.app.permalink import LabelsInUrl
from twinviz.app.state import ExplorerState


class _Loop:
    """The two timeout calls of a Bokeh document that LabelsInUrl uses, run by hand."""

    def __init__(self):
        self.pending = {}
        self.next_id = 0

    def add_timeout_callback(self, callback, delay_ms):
        self.next_id += 1
        self.pending[self.next_id] = (callback, delay_ms)
        return self.next_id

    def remove_timeout_callback(self, handle):
        if handle not in self.pending:
            raise ValueError("already run")
        del self.pending[handle]

    def run_due(self):
        for handle, (callback, _) in list(self.pending.items()):
            del self.pending[handle]
            callback()


@pytest.fixture()
def state(app_data):
    return ExplorerState(app_data, star=3)


def _query(location):
    return location.query_params


def test_labels_in_the_url_a_page_opens_with_are_applied(state):
    lo, hi = state.data.teff_range
    teff = round((lo + hi) / 2, 1)
    location = Location(search=f"?star=3&teff={teff}&logg=2.0")
    LabelsInUrl(location, state, None)
    assert state.teff == teff and state.logg == 2.0
    assert f"teff={teff:.1f}" in location.search and "logg=2.000" in location.search
    assert _query(location)["star"] == 3  # the rest of the query is kept


@pytest.mark.parametrize("search", ["?teff=warm", "?teff=nan&logg=", "?teff=1e9"])
def test_a_bad_label_in_the_url_leaves_the_state_as_it_was(state, search):
    teff, logg = state.teff, state.logg
    LabelsInUrl(Location(search=search), state, None)
    assert (state.teff, state.logg) == (teff, logg)


def test_slider_steps_reach_the_url_once_they_rest(state):
    location, loop = Location(search="?star=3"), _Loop()
    labels = LabelsInUrl(location, state, loop)
    written = _query(location)["teff"]
    for step in range(5):
        state.teff = state.teff + 10.0
        assert _query(location)["teff"] == written  # not during the steps ...
        assert len(loop.pending) == 1 and next(iter(loop.pending.values()))[1] == labels.delay_ms
    loop.run_due()  # ... but once they rest
    assert f"teff={state.teff:.1f}" in location.search
    labels.stop()
    state.logg = state.logg + 0.1
    assert not loop.pending


@pytest.mark.parametrize("bad", ["rank=bogus", "k=-3", "k=many", "map=nowhere"])
def test_a_bad_value_in_the_url_drops_only_itself(state, bad):
    """A hand-edited or stale permalink: the good parameters still apply, the bad one keeps the
    state's own value (Panel's sync stopped at the bad value and lost the ones after it)."""
    from twinviz.app.layout import URL_PARAMETERS
    from twinviz.app.permalink import sync_query

    before = {name: getattr(state, name) for name in URL_PARAMETERS}
    location = Location(search=f"?star=5&{bad}&twin=6")
    sync_query(location, state, {k: v for k, v in URL_PARAMETERS.items() if k not in ("teff", "logg")})
    assert state.star == 5 and state.twin == 6
    bad_name = {v: k for k, v in URL_PARAMETERS.items()}[bad.split("=")[0]]
    assert getattr(state, bad_name) == before[bad_name]


def test_a_permalinks_twin_is_kept_with_its_star(state):
    from twinviz.app.layout import URL_PARAMETERS
    from twinviz.app.permalink import sync_query

    sync_query(Location(search="?star=5&twin=6"), state, {k: v for k, v in URL_PARAMETERS.items()
                                                         if k not in ("teff", "logg")})
    assert (state.star, state.twin) == (5, 6)
    state.star = 7  # choosing another star afterwards compares it with its own twin again
    assert state.twin == -1


def _explorer_params():
    from twinviz.app.layout import URL_PARAMETERS

    return {k: v for k, v in URL_PARAMETERS.items() if k not in ("teff", "logg")}


def test_an_abundance_colouring_in_the_url_applies_and_stays(state):
    """``colour=[Fe/H]``: Panel cannot parse a value starting with "[" (it dropped it, and every
    later URL update re-encoded the query without it)."""
    from twinviz.app.permalink import sync_query

    location = Location(search="?tab=1&colour=%5BFe%2FH%5D")
    sync_query(location, state, _explorer_params())
    assert state.colour_by == "[Fe/H]"
    LabelsInUrl(location, state, None)
    state.teff = state.teff + 10.0  # a later URL update keeps it
    assert "colour=%5BFe%2FH%5D" in location.search and "tab=1" in location.search


def test_no_url_update_rewrites_the_twin_as_a_float(state):
    from twinviz.app.permalink import sync_query

    location = Location(search="?star=3")
    sync_query(location, state, _explorer_params())
    LabelsInUrl(location, state, None)
    state.logg = state.logg + 0.05
    assert "twin=-1&" in location.search + "&" and "-1.0" not in location.search


def test_a_slider_at_its_end_round_trips_through_the_url(app_data):
    """The slider's end is not a round number (5 499.98 K); its written value (5 500.0) is past
    it, and the reload dropped it and the logg beside it."""
    first = ExplorerState(app_data, star=3)
    lo, hi = first.param.teff.bounds
    end = hi - 0.02
    first.param.teff.bounds = (lo, end)
    first.param.update(teff=end, logg=first.param.logg.bounds[0] + 0.3)
    location = Location(search="?star=3")
    LabelsInUrl(location, first, None)
    assert f"teff={end:.1f}" in location.search and float(f"{end:.1f}") > end
    again = ExplorerState(app_data, star=3)
    again.param.teff.bounds = (lo, end)
    LabelsInUrl(Location(search=location.search), again, None)
    assert again.teff == pytest.approx(end) and again.logg == pytest.approx(first.logg)
