"""The Training tab's loss curves after a run of one epoch: one point per series must show."""
from bokeh.models import Scatter

from twinviz.app.training_curves import LossCurves


def _columns_with_markers(fig) -> set:
    return {r.glyph.y for r in fig.renderers if isinstance(r.glyph, Scatter)}


def test_one_epoch_shows_markers_and_a_loss_axis_around_the_loss():
    curves = LossCurves()
    curves.add([{"kind": "step", "step": 1, "mse_flux": 0.82, "adv_loss": 0.7, "adv_acc": 0.55},
                {"kind": "epoch", "step": 1, "val_mse": 0.79, "val_adv_acc": 0.5, "val_swapped_mse": 0.9,
                 "val_rank1": 0.05}])
    # every series has markers, so a single point is drawn
    assert {"recon", "val_mse"} <= _columns_with_markers(curves.recon)
    assert {"adv_acc", "val_adv_acc"} <= _columns_with_markers(curves.adversary)
    assert "val_swapped_mse" in _columns_with_markers(curves.swapped)
    assert "val_rank1" in _columns_with_markers(curves.rank1)
    # the log axes span the values (Bokeh's own range showed 1e-3 … 1e-2 for a loss of 0.82)
    r = curves.recon.y_range
    assert r.start < 0.79 and r.end > 0.82 and r.end / r.start < 10
    s = curves.swapped.y_range
    assert s.start < 0.9 < s.end and s.end / s.start < 10
    curves.add([{"kind": "step", "step": 2, "mse_flux": 0.02}])  # a later, smaller loss widens it
    assert curves.recon.y_range.start < 0.02 and curves.recon.y_range.end > 0.82
