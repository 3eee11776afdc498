"""List the nearest twins of one star: its k nearest neighbours in latent space (L1 by default),
exactly, with their distances, labels and whether they truly share its chemistry (`group`).

Examples:
  twinviz twins --latents val.latents.nc --star 42 -k 10
  twinviz twins --model runs/fader --data val.nc --star 42 --json
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
    parser.add_argument("--data", metavar="FILE", help="spectra to encode with --model")
    parser.add_argument("--metric", choices=("l1", "l2"), default="l1", help="distance in latent space")
    parser.add_argument("--backend", choices=("auto", "faiss", "torch"), default="auto", help="search backend")
    parser.add_argument("--device", default="auto", help="model device with --model")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _latents_from_args(args):
    from twinviz.evaluation.ood import add_ood
    from twinviz.latents import encode_dataset, load_latents
    from twinviz.model import ModelError
    from twinviz.spectra.dataset import open_spectra

    from twinviz.commands._model_arg import load_model, resolve_model_dir

    if args.latents:
        return load_latents(args.latents)
    if args.model and args.data:
        model_dir = resolve_model_dir(args.model)
        model = load_model(model_dir, args.device)
        ds = open_spectra(args.data, chunks={})
        return add_ood(encode_dataset(model, ds), model, ds, model_dir)
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


def _ood_rows(latents, positions):
    """Per position: {"flag", "labels", "recon", "recon_mse", "why"}, or None without flags."""
    from twinviz.evaluation.ood import ood_from_latents

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
    from twinviz.twins.index import TwinIndex, TwinIndexError
    try:
        latents = _latents_from_args(args)
        ids = latents["star"].values
        index = TwinIndex(latents["z"].values, metric=args.metric, backend=args.backend, ids=ids)
        star = _star_key(args.star, ids)
        pos = index.position_of(star)
        positions, distances = index.search(pos, args.k)
    except (ModelError, TwinIndexError) as exc:
        print(f"twinviz twins: error: {exc}", file=sys.stderr)
        return 2
    groups = latents["group"].values if "group" in latents else np.full(len(ids), -1)
    ood, basis = _ood_rows(latents, [pos, *positions.tolist()])
    rows = []
    for rank, (p, d) in enumerate(zip(positions.tolist(), distances.tolist()), start=1):
        row = {"rank": rank, "star": ids[p].item(), "distance": d}
        for name in ("teff", "logg", "group"):
            if name in latents:
                row[name] = latents[name].values[p].item()
        row["same_group"] = bool(groups[pos] >= 0 and groups[p] == groups[pos])
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
        print(json.dumps({"query": me, "metric": args.metric, "twins": rows, "true_twin": twin,
                          "ood_criteria": basis or NO_FLAGS}, indent=2))
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
              else f"out of distribution: no (recon MSE {mine['recon_mse']:.3g})")
        print(f"  criteria: {basis}")
        if mine["flag"]:
            print("  its twins below are not to be trusted as chemistry twins: the model cannot speak for this star")
    if twin is not None:
        print(f"its closest true twin (same group): star {twin['star']}, {args.metric} distance "
              f"{twin['distance']:.5g}, twin rank {twin['twin_rank']} of {len(ids)}")
    w = max(10, *(len(str(r["star"])) for r in rows)) if rows else 10
    print(f"{'rank':>4} {'star':>{w}} {args.metric + ' dist':>12} {'Teff K':>8} {'logg':>6} {'group':>8}  "
          f"{'twin?':<5}  {'recon MSE':>9}  OOD")
    for r in rows:
        o = r["ood"]
        recon = f"{o['recon_mse']:>9.3g}" if o else f"{'?':>9}"
        flag = ("OOD: " + o["why"] if o["flag"] else "") if o else "?"
        print(f"{r['rank']:>4} {str(r['star']):>{w}} {r['distance']:>12.5g} {r.get('teff', float('nan')):>8.0f} "
              f"{r.get('logg', float('nan')):>6.2f} {r.get('group', -1):>8}  {'yes' if r['same_group'] else '':<5}  "
              f"{recon}  {flag}")
    return 0
