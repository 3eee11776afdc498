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
    from twinviz.commands._model_arg import add_rank_by_argument

    add_rank_by_argument(parser)


def _explain(args, bundle, query, answer):
    """The --explain section: explain_pair of the star and the chosen other star, at the star's u."""
    from twinviz.evaluation.explain import explain_pair
    from twinviz.model import ModelError
    from twinviz.spectra.grid import get_grid

    if bundle is None:
        raise ModelError("--explain decodes the latents, so it needs the model. Fix: add --model DIR")
    pos = answer.position
    other = int(answer.positions[0]) if args.explain == "nearest" else query.position_of(args.explain)
    z = query.z
    model = bundle.model
    out = explain_pair(model, z[pos], z[other], float(query.teff[pos]), float(query.logg[pos]),
                       get_grid(model.config.grid_id).wavelength, n=args.explain_lines)
    out["star"], out["other"] = query.ids[pos].item(), query.ids[other].item()
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


def _query_from_args(args):
    """(the TwinQuery, the bundle when --model was given, else None)."""
    from twinviz.latents import load_latents
    from twinviz.model import ModelError
    from twinviz.spectra.dataset import open_spectra

    from twinviz.commands._model_arg import load_model

    if args.pixel_finder:
        from twinviz.evaluation.pixel_finder import load_pixel_finder

        if args.latents or args.model or args.explain:
            raise ModelError("--pixel-finder ranks spectra itself: it does not combine with --latents, --model or "
                             "--explain. Fix: give --pixel-finder DIR --data FILE only")
        if not args.data:
            raise ModelError("--pixel-finder needs the spectra to rank. Fix: add --data FILE")
        finder = load_pixel_finder(args.pixel_finder)
        return finder.twin_query(open_spectra(args.data, chunks={}), metric=args.metric, backend=args.backend), None
    if args.latents:
        latents = load_latents(args.latents)
        if not args.model:
            return _bare_query(latents, args), None
        bundle = load_model(args.model, args.device)
        return bundle.twin_query(latents, metric=args.metric, backend=args.backend), bundle
    if args.model and args.data:
        bundle = load_model(args.model, args.device)
        ds = open_spectra(args.data, chunks={})
        latents = bundle.embed(ds, rank_by=args.rank_by)
        return bundle.twin_query(latents, metric=args.metric, backend=args.backend), bundle
    raise ModelError("give --latents FILE, or --model DIR with --data FILE. "
                     "Fix: e.g. `twinviz twins --latents val.latents.nc --star 42`")


def _bare_query(latents, args):
    """A latent file without its model: what it stores (no calibration: P(twin) needs --model)."""
    from twinviz.latents.encode import twin_vectors
    from twinviz.latents.ood import ood_from_latents
    from twinviz.twins.query import TwinQuery

    found = ood_from_latents(latents)
    ranked = latents.attrs.get("ranked_on") or ("z_twin (the model's twin metric)" if "z_twin" in latents else "z")
    return TwinQuery(twin_vectors(latents), latents["star"].values, latents["teff"].values, latents["logg"].values,
                     group=latents["group"].values if "group" in latents else None, ranked_on=str(ranked),
                     ood=None if found is None else found[0], recon_mse=None if found is None else found[1],
                     calibration_note=("P(twin): not shown: give --model DIR (the model that made these latents) "
                                       "to use its calibration"),
                     metric=args.metric, backend=args.backend, domain_note=str(latents.attrs.get("domain_note", "")))


NO_FLAGS = ("unknown: this latent file has no out-of-distribution flags (written before they existed). "
            "Fix: re-run `twinviz embed`, or pass --model and --data")


def main(args) -> int:
    from twinviz.model import ModelError
    from twinviz.twins.confidence import CalibrationError
    from twinviz.twins.index import TwinIndexError
    from twinviz.evaluation.pixel_finder import PixelFinderError
    try:
        query, bundle = _query_from_args(args)
        answer = query.query(args.star, args.k)
        if args.model:
            answer.p_twin_note = answer.p_twin_note.replace("--model M", f"--model {args.model}")
        explanation = _explain(args, bundle, query, answer) if args.explain else None
    except (ModelError, TwinIndexError, CalibrationError, PixelFinderError) as exc:
        print(f"twinviz twins: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        doc = answer.as_dict()
        doc["explain"] = explanation
        doc["ood_criteria"] = doc["ood_criteria"] or NO_FLAGS
        print(json.dumps(doc, indent=2))
        return 0
    _print_answer(answer, len(query.ids), args.metric)
    if explanation is not None:
        _print_explanation(explanation)
    return 0


def _print_answer(answer, n_stars: int, metric: str) -> None:
    me, rows = answer.query_row, answer.rows
    labels = [f"Teff {me['teff']:.0f} K", f"logg {me['logg']:.2f} dex", f"group {me['group']}"]
    print(f"star {answer.star}: " + ", ".join(labels))
    print(f"ranked on: {answer.ranked_on}")
    if answer.domain_note:
        print(f"WARNING — {answer.domain_note}")
    mine = me["ood"]
    if mine is None:
        print(f"out of distribution: {NO_FLAGS}")
    else:
        print(f"out of distribution: YES — {mine['why']}" if mine["flag"]
              else "out of distribution: no" + ("" if mine["recon_mse"] is None
                                                 else f" (recon MSE {mine['recon_mse']:.3g})"))
        print(f"  criteria: {answer.ood_criteria}")
        if mine["flag"]:
            print("  its twins below are not to be trusted as chemistry twins: the model (or finder) cannot speak for this star")
    twin = answer.true_twin
    if twin is not None:
        print(f"its closest true twin (same group): star {twin['star']}, {metric} distance "
              f"{twin['distance']:.5g}, twin rank {twin['twin_rank']} of {n_stars}")
    print(answer.p_twin_note)
    w = max(10, *(len(str(r["star"])) for r in rows)) if rows else 10
    print(f"{'rank':>4} {'star':>{w}} {metric + ' dist':>12} {'Teff K':>8} {'logg':>6} {'group':>8} "
          f"{'P(twin)':>8}  {'twin?':<5}  {'recon MSE':>9}  OOD")
    for r in rows:
        p = "n/a" if r["p_twin"] is None else f"{r['p_twin']:.3f}"
        o = r["ood"]
        recon = f"{'?':>9}" if not o else f"{'—':>9}" if o["recon_mse"] is None else f"{o['recon_mse']:>9.3g}"
        flag = ("OOD: " + o["why"] if o["flag"] else "") if o else "?"
        print(f"{r['rank']:>4} {str(r['star']):>{w}} {r['distance']:>12.5g} {r['teff']:>8.0f} "
              f"{r['logg']:>6.2f} {r['group']:>8} {p:>8}  "
              f"{'yes' if r['same_group'] else '':<5}  {recon}  {flag}")
