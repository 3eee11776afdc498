"""Fit the twin metric (twinviz/twins/metric.py) of a trained model: once, after training.

The best model is encoded on the training spectra (whose twins teach the map) and on the
validation spectra (which choose how many axes to keep, or none); the result is stored beside
the weights with the weights' SHA-256 and the fingerprints of both datasets (``fitted_on``,
``chosen_on``: :mod:`twinviz.spectra.fingerprint`). Data without groups cannot teach it: the model
then keeps raw z. The same data for both is refused (the choice would be in-sample).
"""
from __future__ import annotations

import numpy as np

__all__ = ["fit_model_twin_metric", "has_twins"]


def _groups(ds) -> np.ndarray | None:
    """The dataset's chemistry groups when at least one star has a group-mate, else None."""
    from twinviz.twins.groups import swap_partners

    if "group" not in ds.variables:
        return None
    groups = np.asarray(ds["group"].values, dtype=np.int64)
    return groups if (swap_partners(groups) >= 0).any() else None


def has_twins(ds) -> bool:
    """True when the dataset's ``group`` gives at least one star a group-mate (a twin to fit on)."""
    return _groups(ds) is not None


def fit_model_twin_metric(model_dir, train_path: str, val_path: str | None, *, device: str = "cpu",
                          log=None) -> dict:
    """Fit, choose and save the twin metric of the model in ``model_dir``. Returns what happened
    ({"status": "fitted"|"raw z"|"skipped", ...}) for the run's log."""
    from twinviz.bundle.provenance import same_inputs
    from twinviz.latents.encode import encode_dataset
    from twinviz.model import FaderNetwork, ModelError
    from twinviz.spectra.dataset import open_spectra
    from twinviz.spectra.fingerprint import describe_data
    from twinviz.twins.metric import choose_twin_metric, fit_twin_metrics, store_twin_metric

    say = log or (lambda *a: None)
    if not val_path:
        return {"status": "skipped", "why": "no validation data to choose the number of axes"}
    if same_inputs(train_path, val_path):
        raise ModelError(f"--val {val_path}: the same data as --data {train_path}: the metric's size would be "
                         "chosen on the twins it was fitted on. Fix: give a separate validation file "
                         "(`twinviz simulate --seed N` with another seed)")
    model = FaderNetwork.from_pretrained(model_dir, device=device)
    with open_spectra(train_path) as train, open_spectra(val_path) as val:
        fitted_on, chosen_on = describe_data(train, train_path), describe_data(val, val_path)
        g_train, g_val = _groups(train), _groups(val)
        if g_train is None or g_val is None:
            return {"status": "skipped", "why": "training or validation data without twins (group)"}
        z_train = encode_dataset(model, train)["z"].values
        z_val = encode_dataset(model, val)["z"].values
        labels_train = {k: np.asarray(train[k].values) for k in ("teff", "logg")}
        labels_val = {k: np.asarray(val[k].values) for k in ("teff", "logg")}
    metrics = fit_twin_metrics(z_train, g_train, **labels_train, source=str(train_path))
    chosen = choose_twin_metric(metrics, z_val, g_val, **labels_val, source=str(val_path))
    if chosen is not None:
        chosen.info.update(weights_sha256=model.weights_sha256, fitted_on=fitted_on, chosen_on=chosen_on)
    store_twin_metric(model_dir, chosen)  # beside the weights, which stay as they are
    if chosen is None:
        say("twin metric: raw z ranks the validation twins best; kept raw z")
        return {"status": "raw z"}
    scores = chosen.info["validation"]
    say("twin metric: %d of %d axes, Teff/logg degree %d (validation rank 1 %.1f %% vs %.1f %% on raw z)",
        chosen.dims, chosen.projection.shape[0], chosen.degree, 100 * scores[chosen.name]["rank1"],
        100 * scores["raw"]["rank1"])
    return {"status": "fitted", "dims": chosen.dims, "degree": chosen.degree}
