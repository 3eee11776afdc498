"""List the nearest twins of one star: its k nearest neighbours in latent space (L1 by default),
exactly, with their distances, labels and whether they truly share its chemistry (`group`).

Examples:
  twinviz twins --latents val.latents.nc --star 42 -k 10
  twinviz twins --model runs/fader --data val.nc --star 42 --json
  twinviz twins --model runs/fader --data val.nc --star 42 --explain     # why: the lines that differ
  twinviz twins --pixel-finder finders/pixel --data val.nc --star 42     # the pixel twin finder instead

--pixel-finder ranks with a finder from `twinviz fit-pixel-finder` (polynomial residuals in a twin
metric learned from training twins; no decoder, so no --explain and no P(twin)); its stars outside
the finder's training Teff/logg ranges are flagged.

With --model, a P(twin) column comes from the model's calibration (`twinviz calibrate`); the
table says when there is none or when it does not apply. --explain decodes the star and its
nearest listed star (or --explain STAR) at the star's own (Teff, logg): D(z_A,u) − D(z_B,u) is
their chemical difference, and its strongest lines are listed with the element they belong to.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--star", required=True,
                        help="the star's id (the dataset's `star` coordinate: a number, or an APOGEE_ID "
                             "such as 2M05392474+4038437 for imported data)")
    parser.add_argument("-k", "--k", type=int, default=10, help="number of twins to list")
    parser.add_argument("--latents", metavar="FILE", help="latent file from `twinviz embed`")
    parser.add_argument("--model", metavar="DIR", help="…or a model/run directory, with --data, to encode now")
    parser.add_argument("--data", metavar="FILE", help="spectra to encode with --model (or rank with --pixel-finder)")
    parser.add_argument("--pixel-finder", metavar="DIR", default=None,
                        help="…or rank the --data spectra with a pixel twin finder (`twinviz fit-pixel-finder`)")
    parser.add_argument("--metric", choices=("l1", "l2"), default="l1", help="distance in latent space")
    parser.add_argument("--backend", choices=("auto", "faiss", "torch"), default="auto", help="search backend")
    parser.add_argument("--device", default="auto", help="model device with --model")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--explain", nargs="?", const="nearest", default=None, metavar="STAR",
                        help="needs --model: the chemical-difference spectrum between the star and STAR "
                             "(default: its nearest listed star) and its strongest lines, by element")
    parser.add_argument("--explain-lines", type=int, default=8, help="lines to list with --explain")


def _explain(args, model, latents, pos, positions, index):
    """The --explain section: explain_pair of the star and the chosen other star, at the star's u."""
    from twinviz.evaluation.explain import explain_pair
    from twinviz.model import ModelError
    from twinviz.spectra.grid import get_grid

    if not args.model:
        raise ModelError("--explain decodes the latents, so it needs the model. Fix: add --model DIR")
    other = positions[0] if args.explain == "nearest" else index.position_of(int(args.explain))
    if model is None:  # latents given from a file: the model was not needed until now
        from twinviz.commands._model_arg import load_model

        model = load_model(args.model, args.device)
    z = latents["z"].values
    teff, logg = (float(latents[name].values[pos]) for name in ("teff", "logg"))
    out = explain_pair(model, z[pos], z[other], teff, logg, get_grid(model.config.grid_id).wavelength,
                       n=args.explain_lines)
    out["star"], out["other"] = latents["star"].values[pos].item(), latents["star"].values[other].item()
    return out


def _print_explanation(e) -> None:
    print(f"\nwhy: D(z_A,u) − D(z_B,u), star {e['star']} minus star {e['other']}, both decoded at Teff "
          f"{e['teff']:.0f} K, logg {e['logg']:.2f}: RMS {e['rms']:.2g}, max |Δflux| {e['max_abs']:.2g} "
          "(near zero for true twins)")
    print(f"{'λ Å':>10} {'Δflux':>9}  line (species, λ Å)   element(s)")
    for r in e["lines"]:
        line = "no line within reach" if r["species"] is None else (
            f"{r['species']} {'I' * r['ion']:<3} {r['line_wavelength']:9.2f}")
        print(f"{r['wavelength']:>10.2f} {r['delta_flux']:>+9.4f}  {line:<21} {', '.join(r['elements'] or [])}")


def _confidence(args, latents, pos, positions, distances, ood):
    """(P(twin) per listed star or None, a note saying where P comes from or why it is absent).
    Raises CalibrationError for a calibration file of other weights."""
    from twinviz.commands._model_arg import resolve_model_dir
    from twinviz.twins.confidence import load_calibration, table_probabilities

    if args.pixel_finder:
        return [None] * len(positions), "P(twin): not available for the pixel finder (no calibration)"
    if not args.model:
        return [None] * len(positions), ("P(twin): not shown: give --model DIR (the model that made these latents) "
                                         "to use its calibration")
    cal = load_calibration(resolve_model_dir(args.model))
    if cal is not None and cal.metric != args.metric:
        return [None] * len(positions), (f"P(twin): not applicable: calibrated for the {cal.metric} distance, "
                                         f"listed by {args.metric}")

    def labels(p):
        return {**{name: latents[name].values[p].item() for name in ("teff", "logg", "snr") if name in latents},
                "ood": bool(ood and ood[p]["flag"])}
    probabilities, note = table_probabilities(cal, distances, labels(pos), [labels(p) for p in positions.tolist()])
    if cal is None:
        note = note.replace("--model M", f"--model {args.model}")
    return probabilities, note


def _latents_from_args(args):
    """(latents, the model when it was loaded to encode them, else None, the pixel finder when
    it ranks them, else None)."""
    from twinviz.evaluation.ood import add_ood
    from twinviz.latents import encode_dataset, load_latents
    from twinviz.model import ModelError
    from twinviz.spectra.dataset import open_spectra

    from twinviz.commands._model_arg import load_model, resolve_model_dir

    if args.pixel_finder:
        from twinviz.twins.pixel_finder import load_pixel_finder

        if args.latents or args.model or args.explain:
            raise ModelError("--pixel-finder ranks spectra itself: it does not combine with --latents, --model or "
                             "--explain. Fix: give --pixel-finder DIR --data FILE only")
        if not args.data:
            raise ModelError("--pixel-finder needs the spectra to rank. Fix: add --data FILE")
        finder = load_pixel_finder(args.pixel_finder)
        return finder.latents(open_spectra(args.data, chunks={})), None, finder
    if args.latents:
        return load_latents(args.latents), None, None
    if args.model and args.data:
        model_dir = resolve_model_dir(args.model)
        model = load_model(model_dir, args.device)
        ds = open_spectra(args.data, chunks={})
        return add_ood(encode_dataset(model, ds), model, ds, model_dir), model, None
    raise ModelError("give --latents FILE, or --model DIR with --data FILE. "
                     "Fix: e.g. `twinviz twins --latents val.latents.nc --star 42`")


def _star_key(text: str, ids):
    """The id typed on the command line, as the dataset's ids are typed (int ids stay ints)."""
    import numpy as np

    if np.issubdtype(ids.dtype, np.integer):
        try:
            return int(text)
        except ValueError:
            return text
    return str(text)


def _ood_rows(latents, positions, finder=None):
    """Per position: {"flag", "labels", "recon", "recon_mse", "why"}, or None without flags."""
    from twinviz.evaluation.ood import ood_from_latents

    if finder is not None:  # the pixel finder: only its training label ranges (no reconstruction)
        outside = finder.outside_training(latents["teff"].values, latents["logg"].values)
        return ({p: {"flag": bool(outside[p]), "labels": bool(outside[p]), "recon": False, "recon_mse": None,
                     "why": "Teff/logg outside " + finder.describe_range()} for p in positions},
                "Teff/logg inside " + finder.describe_range() + "; no reconstruction check (no decoder)")
    found = ood_from_latents(latents)
    if found is None:
        return None, None
    criteria, recon = found
    teff, logg = latents["teff"].values, latents["logg"].values
    flags = criteria.flags(teff, logg, recon)
    rows = {}
    for p in positions:
        rows[p] = {"flag": bool(flags["ood"][p]), "labels": bool(flags["ood_labels"][p]),
                   "recon": bool(flags["ood_recon"][p]), "recon_mse": float(recon[p]),
                   "why": criteria.describe(float(teff[p]), float(logg[p]), float(recon[p]))}
    return rows, criteria.basis


NO_FLAGS = ("unknown: this latent file has no out-of-distribution flags (written before they existed). "
            "Fix: re-run `twinviz embed`, or pass --model and --data")


def main(args) -> int:
    import numpy as np

    from twinviz.model import ModelError
    from twinviz.twins.confidence import CalibrationError
    from twinviz.latents.encode import twin_vectors
    from twinviz.twins.index import TwinIndex, TwinIndexError
    from twinviz.twins.pixel_finder import PixelFinderError
    try:
        latents, model, finder = _latents_from_args(args)
        ids = latents["star"].values
        # z_twin when the model that made the latents has a twin metric (encode_dataset adds it)
        index = TwinIndex(twin_vectors(latents), metric=args.metric, backend=args.backend, ids=ids)
        star = _star_key(args.star, ids)
        pos = index.position_of(star)
        positions, distances = index.search(pos, args.k)
        ood, basis = _ood_rows(latents, [pos, *positions.tolist()], finder)
        p_twin, p_note = _confidence(args, latents, pos, positions, distances, ood)
        explanation = _explain(args, model, latents, pos, positions, index) if args.explain else None
    except (ModelError, TwinIndexError, CalibrationError, PixelFinderError) as exc:
        print(f"twinviz twins: error: {exc}", file=sys.stderr)
        return 2
    groups = latents["group"].values if "group" in latents else np.full(len(ids), -1)
    rows = []
    for rank, (p, d) in enumerate(zip(positions.tolist(), distances.tolist()), start=1):
        row = {"rank": rank, "star": ids[p].item(), "distance": d}
        for name in ("teff", "logg", "group"):
            if name in latents:
                row[name] = latents[name].values[p].item()
        row["same_group"] = bool(groups[pos] >= 0 and groups[p] == groups[pos])
        row["p_twin"] = p_twin[rank - 1]
        row["ood"] = ood[p] if ood else None
        rows.append(row)
    me = {"star": star, **{n: latents[n].values[pos].item() for n in ("teff", "logg", "group") if n in latents},
          "ood": ood[pos] if ood else None}
    twin = None
    if groups[pos] >= 0 and np.count_nonzero(groups == groups[pos]) > 1:
        twin_pos, twin_dist = index.twin_distances(groups)
        rank = int(index.twin_ranks(groups, queries=[pos])[0])
        twin = {"star": ids[twin_pos[pos]].item(), "distance": float(twin_dist[pos]), "twin_rank": rank}
    if args.json:
        ranked_on = (f"pixel finder {args.pixel_finder}" if args.pixel_finder
                     else "z_twin (the model's twin metric)" if "z_twin" in latents else "z")
        print(json.dumps({"query": me, "metric": args.metric, "ranked_on": ranked_on, "twins": rows, "true_twin": twin,
                          "p_twin_note": p_note, "explain": explanation, "ood_criteria": basis or NO_FLAGS},
                         indent=2))
        return 0
    labels = []
    if "teff" in me:
        labels.append(f"Teff {me['teff']:.0f} K")
    if "logg" in me:
        labels.append(f"logg {me['logg']:.2f} dex")
    if "group" in me:
        labels.append(f"group {me['group']}")
    print(f"star {star}: " + ", ".join(labels))
    if ood is None:
        print(f"out of distribution: {NO_FLAGS}")
    else:
        mine = ood[pos]
        print(f"out of distribution: YES — {mine['why']}" if mine["flag"]
              else "out of distribution: no" + ("" if mine["recon_mse"] is None
                                                 else f" (recon MSE {mine['recon_mse']:.3g})"))
        print(f"  criteria: {basis}")
        if mine["flag"]:
            print("  its twins below are not to be trusted as chemistry twins: the model (or finder) cannot speak for this star")
    if twin is not None:
        print(f"its closest true twin (same group): star {twin['star']}, {args.metric} distance "
              f"{twin['distance']:.5g}, twin rank {twin['twin_rank']} of {len(ids)}")
    print(p_note)
    w = max(10, *(len(str(r["star"])) for r in rows)) if rows else 10
    print(f"{'rank':>4} {'star':>{w}} {args.metric + ' dist':>12} {'Teff K':>8} {'logg':>6} {'group':>8} "
          f"{'P(twin)':>8}  {'twin?':<5}  {'recon MSE':>9}  OOD")
    for r in rows:
        p = "n/a" if r["p_twin"] is None else f"{r['p_twin']:.3f}"
        o = r["ood"]
        recon = f"{'?':>9}" if not o else f"{'—':>9}" if o["recon_mse"] is None else f"{o['recon_mse']:>9.3g}"
        flag = ("OOD: " + o["why"] if o["flag"] else "") if o else "?"
        print(f"{r['rank']:>4} {str(r['star']):>{w}} {r['distance']:>12.5g} {r.get('teff', float('nan')):>8.0f} "
              f"{r.get('logg', float('nan')):>6.2f} {r.get('group', -1):>8} {p:>8}  "
              f"{'yes' if r['same_group'] else '':<5}  {recon}  {flag}")
    if explanation is not None:
        _print_explanation(explanation)
    return 0
