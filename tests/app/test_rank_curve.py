"""The Metrics tab's rank curve: the 0.1 % and 1 % markers are full-height lines on the log axis."""
from bokeh.models import Ray, Span

from twinviz.app.metrics import rank_curve_figure


def test_rank_thresholds_are_full_height_lines():
    curve = {"rank": [1, 10, 100, 1000], "fraction": [0.2, 0.5, 0.8, 1.0]}
    fig = rank_curve_figure({"n_stars": 4000, "methods": [{"label": "z", "cumulative_rank_curve": curve}]})
    spans = {s.name: s for s in fig.center if isinstance(s, Span)}
    assert set(spans) == {"rank-0p1", "rank-1pct"}
    assert spans["rank-0p1"].location == 4.0 and spans["rank-1pct"].location == 40.0
    assert all(s.dimension == "height" for s in spans.values())  # the whole plot's height, any zoom
    assert not [r for r in fig.renderers if isinstance(r.glyph, Ray)]  # no stubs measured along log x
