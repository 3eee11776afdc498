"""The Training tab's "best" column: a finished run ranked in its twin metric says so, beside the
raw-z rank 1 its epochs were chosen on (the metric is fitted after the last epoch)."""
import json

import numpy as np

from twinviz.app.training_curves import best_text
from twinviz.runs.run import twin_metric_scores
from twinviz.twins.metric import fit_twin_metric


def test_a_run_without_a_metric_shows_its_best_epoch():
    assert best_text({"val_rank1": 0.961, "val_swapped_mse": 3.9e-5}) == "rank-1 96.1%, swap MSE 3.90e-05"


def test_a_finished_run_with_a_metric_shows_the_metrics_rank_first(tmp_path):
    rng = np.random.default_rng(0)
    z = np.repeat(rng.normal(size=(100, 3)), 2, axis=0) + rng.normal(0, 0.1, (200, 3))
    teff, logg = rng.uniform(4000, 5000, 200), rng.uniform(1, 3, 200)
    metric = fit_twin_metric(z, np.repeat(np.arange(100), 2), teff=teff, logg=logg, degree=2).with_dims(4)
    metric.info["validation"] = {"raw": {"rank1": 0.961}, "4/u2": {"rank1": 0.998}}
    metric.save(tmp_path)
    scores = twin_metric_scores(tmp_path)
    assert scores == {"axes": "4/u2", "rank1": 0.998, "raw_rank1": 0.961}
    text = best_text({"val_rank1": 0.961, "val_swapped_mse": 3.9e-5}, scores)
    assert text == "rank-1 99.8% in twin metric (raw z 96.1%), swap MSE 3.90e-05"
    assert twin_metric_scores(tmp_path / "none") == {}
    (tmp_path / "twin_metric.json").write_text(json.dumps({"dims": "x"}))  # unreadable: nothing shown
    assert twin_metric_scores(tmp_path) == {}
