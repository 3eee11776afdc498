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
    parser.add_argument("--star", required=True, type=int, help="the star's id (the dataset's `star` coordinate)")
    parser.add_argument("-k", "--k", type=int, default=10, help="number of twins to list")
    parser.add_argument("--latents", metavar="FILE", help="latent file from `twinviz embed`")
    parser.add_argument("--model", metavar="DIR", help="…or a model/run directory, with --data, to encode now")
    parser.add_argument("--data", metavar="FILE", help="spectra to encode with --model")
    parser.add_argument("--metric", choices=("l1", "l2"), default="l1", help="distance in latent space")
    parser.add_argument("--backend", choices=("auto", "faiss", "torch"), default="auto", help="search backend")
    parser.add_argument("--device", default="auto", help="model device with --model")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _latents_from_args(args):
    from twinviz.latents import encode_dataset, load_latents
    from twinviz.model import ModelError
    from twinviz.spectra.dataset import open_spectra

    from twinviz.commands._model_arg import load_model

    if args.latents:
        return load_latents(args.latents)
    if args.model and args.data:
        model = load_model(args.model, args.device)
        return encode_dataset(model, open_spectra(args.data, chunks={}))
    raise ModelError("give --latents FILE, or --model DIR with --data FILE. "
                     "Fix: e.g. `twinviz twins --latents val.latents.nc --star 42`")


def main(args) -> int:
    import numpy as np

    from twinviz.model import ModelError
    from twinviz.twins.index import TwinIndex, TwinIndexError
    try:
        latents = _latents_from_args(args)
        ids = latents["star"].values
        index = TwinIndex(latents["z"].values, metric=args.metric, backend=args.backend, ids=ids)
        pos = index.position_of(args.star)
        positions, distances = index.search(pos, args.k)
    except (ModelError, TwinIndexError) as exc:
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
        rows.append(row)
    me = {"star": args.star, **{n: latents[n].values[pos].item() for n in ("teff", "logg", "group") if n in latents}}
    twin = None
    if groups[pos] >= 0 and np.count_nonzero(groups == groups[pos]) > 1:
        twin_pos, twin_dist = index.twin_distances(groups)
        rank = int(index.twin_ranks(groups, queries=[pos])[0])
        twin = {"star": ids[twin_pos[pos]].item(), "distance": float(twin_dist[pos]), "twin_rank": rank}
    if args.json:
        print(json.dumps({"query": me, "metric": args.metric, "twins": rows, "true_twin": twin}, indent=2))
        return 0
    labels = []
    if "teff" in me:
        labels.append(f"Teff {me['teff']:.0f} K")
    if "logg" in me:
        labels.append(f"logg {me['logg']:.2f} dex")
    if "group" in me:
        labels.append(f"group {me['group']}")
    print(f"star {args.star}: " + ", ".join(labels))
    if twin is not None:
        print(f"its closest true twin (same group): star {twin['star']}, {args.metric} distance "
              f"{twin['distance']:.5g}, twin rank {twin['twin_rank']} of {len(ids)}")
    print(f"{'rank':>4} {'star':>10} {args.metric + ' dist':>12} {'Teff K':>8} {'logg':>6} {'group':>8}  twin?")
    for r in rows:
        print(f"{r['rank']:>4} {r['star']:>10} {r['distance']:>12.5g} {r.get('teff', float('nan')):>8.0f} "
              f"{r.get('logg', float('nan')):>6.2f} {r.get('group', -1):>8}  {'yes' if r['same_group'] else ''}")
    return 0
