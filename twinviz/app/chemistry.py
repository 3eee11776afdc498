"""The twin table's chemical difference: both latents decoded at the selected star's labels,
clipped into the model's Teff/logg range, read against a scale of twin and random pairs.

* :func:`chemical_difference` — D(z_neighbour, u) − D(z_star, u) at u = the star's (Teff, logg)
  clipped to the model's training range (the decoder is not to be read outside it; a real star
  at 2 648 K is decoded at the range's edge, and the text says so);
* :func:`chemical_scale` — the median RMS of that difference over true-twin pairs and over
  random pairs of the loaded stars (computed once per data, on up to SCALE_PAIRS pairs of each),
  so that "RMS 0.023" can be read against "twins 0.0032, random pairs 0.028";
* :func:`lines_markdown` — the text under the plot, with a caveat when molecular (CN, CO, OH)
  features are among the strongest lines: they respond to Teff/logg and to C, N, O together.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

__all__ = ["MOLECULAR", "SCALE_PAIRS", "chemical_difference", "chemical_scale", "lines_markdown"]

SCALE_PAIRS = 300            # pairs of each kind behind the twin / random scale
MOLECULAR = {"CN", "CO", "OH", "C2", "H2O", "TiO", "FeH"}
_scales: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def decode_labels(data, position: int) -> tuple[tuple[float, float], str]:
    """((Teff, logg) the difference is decoded at, a note when they were clipped into the model's
    range ("" when the star's own labels are inside it))."""
    t, g = float(data.teff[position]), float(data.logg[position])
    (t0, t1), (g0, g1) = data.teff_range, data.logg_range
    u = (float(np.clip(t, t0, t1)), float(np.clip(g, g0, g1)))
    if u == (t, g):
        return u, ""
    return u, (f"The star's Teff {t:.0f} K, logg {g:.2f} lie outside the model's training range "
               f"(Teff {t0:.0f}–{t1:.0f} K, logg {g0:.2f}–{g1:.2f}): decoded at the range's edge, "
               f"Teff {u[0]:.0f} K, logg {u[1]:.2f}.")


def _decode_pairs(data, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n, P] D(z_b, u_a) − D(z_a, u_a), u_a clipped into the model's range."""
    import torch

    (t0, t1), (g0, g1) = data.teff_range, data.logg_range
    teff = torch.tensor(np.clip(data.teff[a], t0, t1), dtype=torch.float32)
    logg = torch.tensor(np.clip(data.logg[a], g0, g1), dtype=torch.float32)
    z = torch.from_numpy(np.ascontiguousarray(data.z, dtype=np.float32))
    with torch.inference_mode():
        da = data.model.decode(z[a], teff, logg).double().numpy()
        db = data.model.decode(z[b], teff, logg).double().numpy()
    return db - da


def chemical_difference(data, star: int, other: int) -> tuple[np.ndarray, tuple[float, float], str]:
    """(difference [P], the labels it was decoded at, the clipping note)."""
    u, note = decode_labels(data, star)
    diff = _decode_pairs(data, np.array([star]), np.array([other]))[0]
    return diff, u, note


def _rms(diff: np.ndarray) -> np.ndarray:
    return np.sqrt(np.nanmean(diff ** 2, axis=-1))


def chemical_scale(data) -> dict:
    """{"twin": median RMS over true-twin pairs or None, "random": median over random pairs,
    "n_twin", "n_random"} on the loaded stars; computed once per data."""
    with _lock:
        if data in _scales:
            return _scales[data]
    from twinviz.twins.groups import twin_pairs

    rng = np.random.default_rng(0)
    pairs = twin_pairs(data.group)
    if len(pairs) > SCALE_PAIRS:
        pairs = pairs[rng.choice(len(pairs), SCALE_PAIRS, replace=False)]
    n = data.n_stars
    a = rng.integers(0, n, SCALE_PAIRS * 2)
    b = rng.integers(0, n, SCALE_PAIRS * 2)
    keep = (a != b) & ~((data.group[a] >= 0) & (data.group[a] == data.group[b]))
    a, b = a[keep][:SCALE_PAIRS], b[keep][:SCALE_PAIRS]
    scale = {"twin": float(np.median(_rms(_decode_pairs(data, pairs[:, 0], pairs[:, 1])))) if len(pairs) else None,
             "random": float(np.median(_rms(_decode_pairs(data, a, b)))) if a.size else None,
             "n_twin": int(len(pairs)), "n_random": int(a.size)}
    with _lock:
        _scales[data] = scale
    return scale


def scale_text(rms: float, scale: dict) -> str:
    """The RMS read against the scale: medians of true twins and random pairs, and where it sits."""
    parts = []
    if scale.get("twin") is not None:
        parts.append(f"true twins {scale['twin']:.2g} (median of {scale['n_twin']})")
    if scale.get("random") is not None:
        parts.append(f"random pairs {scale['random']:.2g} (median of {scale['n_random']})")
    if not parts:
        return ""
    text = "Scale on these stars: " + ", ".join(parts) + "."
    twin, rand = scale.get("twin"), scale.get("random")
    if twin is not None and rand is not None and rand > twin:
        where = ("about as close as true twins" if rms <= 2 * twin else
                 "as different as random pairs" if rms >= 0.7 * rand else "between true twins and random pairs")
        text += f" This pair: {where}."
    return text


def lines_markdown(lines, twin_id, star_id, chemical, scale: dict, clip_note: str = "") -> str:
    """The strongest lines of the chemical difference as a short Markdown table, with the RMS
    read against the twin / random scale and caveats (clipped labels, molecular features)."""
    rms = float(np.sqrt(np.nanmean(chemical ** 2)))
    rows = [f"**Chemical difference, neighbour {twin_id} − star {star_id}**: RMS {rms:.2g}, "
            f"max |Δ| {float(np.nanmax(np.abs(chemical))):.2g}. {scale_text(rms, scale)}"]
    if clip_note:
        rows.append(f"\n⚠ {clip_note}")
    molecular = sorted({r["species"] for r in lines if r["species"] in MOLECULAR})
    if molecular:
        rows.append(f"\n⚠ Molecular features ({', '.join(molecular)}) among the strongest lines: their depth "
                    "follows Teff and logg and C, N, O together, so a model that did not fully strip Teff/logg "
                    "from z shows differences there first; read them as chemistry only with care.")
    rows += ["", "Strongest lines:", "", "| λ (Å) | Δ flux | line | element |", "|---|---|---|---|"]
    for r in lines:
        line = "—" if r["species"] is None else f"{r['species']} {r['line_wavelength']:.2f} Å"
        rows.append(f"| {r['wavelength']:.2f} | {r['delta_flux']:+.4f} | {line} | {', '.join(r['elements'] or [])} |")
    return "\n".join(rows)


_errors: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _abundance_errors(data) -> dict:
    """{"fe_h": [N] or None, "x_fe": [N, n_el] or None}: the data file's optional ``fe_h_err`` and
    ``x_fe_err`` (1-σ, dex), read once per data."""
    with _lock:
        if data in _errors:
            return _errors[data]
    found = {"fe_h": None, "x_fe": None}
    if data.data_path is not None:
        try:
            import xarray as xr

            opener = xr.open_zarr if data.data_path.suffix == ".zarr" else xr.open_dataset
            with opener(data.data_path) as ds:
                for key in found:
                    if f"{key}_err" in ds:
                        found[key] = np.asarray(ds[f"{key}_err"].values, np.float64)
        except Exception:  # noqa: BLE001 - optional: differences are shown without uncertainties
            pass
    with _lock:
        _errors[data] = found
    return found


def abundance_differences(data, star: int, other: int) -> str:
    """The pair's label differences, neighbour − star, per element ([Fe/H], each [X/Fe]) with
    their 1-σ uncertainties (errors added in quadrature) where the data carry them; "" without
    abundances."""
    if data.fe_h is None and data.x_fe is None:
        return ""
    err = _abundance_errors(data)
    items = []

    def add(name, a, b, ea=None, eb=None):
        if not (np.isfinite(a) and np.isfinite(b)):
            return
        text = f"{name} {b - a:+.3f}"
        if ea is not None and eb is not None and np.isfinite(ea) and np.isfinite(eb):
            text += f" ± {float(np.hypot(ea, eb)):.3f}"
        items.append(text)

    if data.fe_h is not None:
        e = err["fe_h"]
        add("[Fe/H]", float(data.fe_h[star]), float(data.fe_h[other]),
            None if e is None else e[star], None if e is None else e[other])
    if data.x_fe is not None:
        e = err["x_fe"]
        for j, el in enumerate(data.elements):
            add(f"[{el}/Fe]", float(data.x_fe[star, j]), float(data.x_fe[other, j]),
                None if e is None else e[star, j], None if e is None else e[other, j])
    if not items:
        return ""
    note = "" if err["fe_h"] is not None or err["x_fe"] is not None else " (the data carry no abundance uncertainties)"
    return f"\n\n**Abundance differences**, neighbour − star (dex){note}: " + ", ".join(items) + "."
