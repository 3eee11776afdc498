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
