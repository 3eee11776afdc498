"""The Training tab's validation: which epoch is kept, and data without twin groups.

An imported survey (``twinviz import apogee``) has no twin groups, and often no separate
validation file. Launching on it with "(none)" as validation used to keep the epoch with the
lowest *training* loss and report it as "best" without saying that it was measured on the
training stars. Here:

* :func:`epoch_rule` — the sentence under the form saying which epoch the run will keep for the
  chosen pair (twinviz.training.validation.best_epoch_key's rules);
* :func:`prepare_validation` — at launch, data without groups and no validation file get a
  held-out random split of the same file (HELD_OUT_FRACTION of its stars, seed 0), written once
  into ``<data dir>/held-out/`` and used as training and validation files; the form says so.
  Above MAX_SPLIT_BYTES of flux it refuses and says how to split on the command line;
* :func:`sample_note` — what the runs table appends to a run's "best" when its numbers were
  measured on its own training data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["HELD_OUT_FRACTION", "MAX_SPLIT_BYTES", "SPLIT_DIR", "epoch_rule", "prepare_validation", "sample_note"]

HELD_OUT_FRACTION = 0.1
MAX_SPLIT_BYTES = 2_000_000_000
SPLIT_DIR = "held-out"


def _find(datasets, path):
    return next((d for d in datasets if d.path == path), None) if path else None


def epoch_rule(datasets, data: str | None, val: str | None, twin_metric: str = "fit") -> str:
    """Which epoch a run on (data, val) keeps, in one sentence."""
    d, v = _find(datasets, data), _find(datasets, val)
    if d is None:
        return ""
    if v is None:
        if not d.has_groups:
            return (f"**Validation:** none chosen and {d.path} has no twin groups: at launch a random "
                    f"{HELD_OUT_FRACTION:.0%} of its stars is held out as validation (a new file pair in "
                    f"`{SPLIT_DIR}/`). **Kept epoch:** the lowest validation MSE among epochs whose adversary "
                    "is at chance.")
        return ("**Validation:** none. **Kept epoch:** the lowest training loss — measured on the training "
                "stars themselves (in-sample).")
    if v.path == d.path:
        return ("**Validation = training data:** every validation number is in-sample (the model saw these "
                "stars). **Kept epoch:** as for a separate file, but the numbers flatter the model.")
    if twin_metric == "fit" and v.has_groups and d.has_groups:
        return ("**Kept epoch:** the latest that did not collapse — a twin metric is fitted after training "
                "and the per-epoch rank-1 on raw z does not predict its rank.")
    if v.has_groups:
        return "**Kept epoch:** the highest validation twin rank-1 (its twin groups)."
    return ("**Kept epoch:** the lowest validation MSE among epochs whose adversary is at chance "
            f"({v.path} has no twin groups, so no rank-1).")


def held_out_split(data_dir, rel_path: str, fraction: float = HELD_OUT_FRACTION, seed: int = 0) -> tuple[str, str]:
    """(training, validation) paths relative to ``data_dir`` of a random split of ``rel_path``,
    written once (an existing pair is reused: the split is deterministic)."""
    from twinviz.runs import RunError
    from twinviz.spectra.dataset import load_spectra, open_spectra, save_spectra

    root = Path(data_dir)
    stem = Path(rel_path).name.split(".")[0]
    tag = f"{stem}.heldout{round(100 * fraction)}-seed{seed}"
    train_rel, val_rel = f"{SPLIT_DIR}/{tag}.train.nc", f"{SPLIT_DIR}/{tag}.val.nc"
    if (root / train_rel).exists() and (root / val_rel).exists():
        return train_rel, val_rel
    lazy = open_spectra(root / rel_path)
    size = lazy.sizes["star"] * lazy.sizes["wavelength"] * 4
    if size > MAX_SPLIT_BYTES:
        raise RunError(f"{rel_path} is too large to split in the app ({size / 1e9:.1f} GB of flux); "
                       "write a validation file with `twinviz` and pick it", [
                           f"{rel_path}: no twin groups and no validation file; split it once outside the app "
                           f"and choose the held-out file as validation"])
    ds = load_spectra(root / rel_path)
    n = ds.sizes["star"]
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(fraction * n)))
    (root / SPLIT_DIR).mkdir(exist_ok=True)
    save_spectra(ds.isel(star=np.sort(order[n_val:])), root / train_rel)
    save_spectra(ds.isel(star=np.sort(order[:n_val])), root / val_rel)
    return train_rel, val_rel


def prepare_validation(config: dict, data_dir, datasets) -> tuple[dict, str]:
    """(config to launch, what the form says about its validation)."""
    d = _find(datasets, config.get("data"))
    if d is None or config.get("val") or d.has_groups:
        return config, ""
    train_rel, val_rel = held_out_split(data_dir, d.path)
    note = (f"{d.path} has no twin groups and no validation file was chosen: trained on {train_rel} and "
            f"validated on {val_rel}, a random {HELD_OUT_FRACTION:.0%} of its stars held out (seed 0).")
    return {**config, "data": train_rel, "val": val_rel}, note


def sample_note(config: dict) -> str:
    """" (in-sample …)" when a run's numbers come from its own training data, else ""."""
    val, data = config.get("val"), config.get("data")
    if not val:
        return " (in-sample: no validation)"
    if Path(val).name == Path(data or "").name and Path(val).parent == Path(data or "").parent:
        return " (in-sample: validation = training data)"
    return ""
