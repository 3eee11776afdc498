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
