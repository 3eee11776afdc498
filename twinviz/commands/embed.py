"""Encode a spectra dataset into fader-network latents, streamed in chunks of stars, and add 2-D
maps (PCA and UMAP) beside them. The result is an xarray dataset with z(star, latent), the star
labels, pca/umap(star, axis) and the out-of-distribution flags — recon_mse, ood, ood_labels,
ood_recon per star, the criteria in ood_* attributes (twinviz.latents.ood) — written
atomically to --out (netCDF .nc or zarr .zarr).

Examples:
  twinviz embed --model runs/fader --data val.nc                 # → val.latents.nc
  twinviz embed --model runs/fader --data big.zarr --out big.latents.zarr --projections pca
  twinviz embed --latents val.latents.nc --projections umap --umap-neighbors 30   # re-map only
"""
from __future__ import annotations

import argparse
import sys

from twinviz.commands._model_arg import add_encoding_arguments, add_rank_by_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from twinviz.latents.projection import UMAP_DEFAULTS

    parser.add_argument("--model", metavar="DIR", help="model or run directory (runs/NAME)")
    parser.add_argument("--data", metavar="FILE", help="spectra to encode (.nc/.zarr, read lazily)")
    parser.add_argument("--latents", metavar="FILE", default=None,
                        help="instead of --model/--data: add projections to an existing latent file")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="latent file to write (default: DATA's name with .latents.nc; with "
                             "--latents, that file is updated)")
    parser.add_argument("--projections", default="pca,umap",
                        help="comma-separated 2-D maps to add: pca, umap ('' for none)")
    parser.add_argument("--umap-neighbors", type=int, default=UMAP_DEFAULTS["n_neighbors"],
                        help="UMAP n_neighbors")
    parser.add_argument("--umap-min-dist", type=float, default=UMAP_DEFAULTS["min_dist"], help="UMAP min_dist")
    parser.add_argument("--umap-metric", default=UMAP_DEFAULTS["metric"], help="UMAP metric")
    parser.add_argument("--umap-fit-stars", type=int, default=UMAP_DEFAULTS["fit_stars"],
                        help="fit UMAP on at most this many stars (the rest are transformed)")
    parser.add_argument("--seed", type=int, default=UMAP_DEFAULTS["seed"], help="UMAP random seed")
    parser.add_argument("--scheduler", choices=("local", "distributed"), default="local",
                        help="local: encode in this process; distributed: on a dask cluster, one task per "
                             "--chunk stars (needs the 'distributed' package: pip install 'twinviz[scale]')")
    parser.add_argument("--workers", type=int, default=2,
                        help="with --scheduler distributed: worker processes of the local cluster started here")
    parser.add_argument("--scheduler-address", default=None, metavar="ADDR",
                        help="with --scheduler distributed: use the running dask scheduler at ADDR "
                             "(e.g. tcp://10.0.0.5:8786) instead of starting a local cluster")
    add_rank_by_argument(parser)
    add_encoding_arguments(parser)


def main(args) -> int:
    from pathlib import Path

    from twinviz.latents import default_latents_path, load_latents, save_latents
    from twinviz.model import ModelError
    from twinviz.latents.projection import add_projections
    from twinviz.spectra.dataset import open_spectra, validate

    from twinviz.commands._model_arg import elapsed_printer, load_model, resolve_model_dir

    say = elapsed_printer()

    methods = tuple(m.strip() for m in args.projections.split(",") if m.strip())
    unknown = set(methods) - {"pca", "umap"}
    if unknown:
        print(f"twinviz embed: error: --projections: unknown {sorted(unknown)}; use pca and/or umap",
              file=sys.stderr)
        return 2
    try:
        if args.latents:
            if args.model or args.data:
                raise ModelError("--latents re-maps an existing latent file; give either it or --model/--data")
            latents = load_latents(args.latents)
            out = Path(args.out or args.latents)
        else:
            if not (args.model and args.data):
                raise ModelError("--model and --data are both needed (or --latents FILE to re-map). "
                                 "Fix: e.g. `twinviz embed --model runs/fader --data val.nc`")
            model_dir = resolve_model_dir(args.model)
            bundle = load_model(model_dir, args.device)
            # lazily: only one chunk of flux in memory; its values are checked chunk by chunk as the
            # encoder reads them (a check here would read the whole file once more: 160 s at 10^6)
            ds = open_spectra(args.data, chunks={}, validate=False)
            validate(ds, source=args.data, check_values=False)
            bundle.model.check_grid(ds)
            n = ds.sizes["star"]
            say(f"encoding {n} stars from {args.data} in chunks of {args.chunk}")
            report = lambda done, total: say(f"  {done}/{total} stars")  # noqa: E731
            if args.scheduler == "distributed":
                latents = _encode_distributed(args, bundle, ds, say, report)
            else:
                say("encoding, then the out-of-distribution flags: reconstruction error of every star")
                latents = bundle.embed(ds, rank_by=args.rank_by, batch_size=args.batch_size, chunk=args.chunk,
                                       progress=report)
            say(f"twins are ranked on: {latents.attrs['ranked_on']}")
            if latents.attrs.get("domain_note"):
                say(f"WARNING — {latents.attrs['domain_note']}")
            n_ood = int(latents["ood"].values.sum())
            say(f"  {n_ood} of {n} stars out of distribution; criteria: {latents.attrs['ood_basis']}")
            out = Path(args.out) if args.out else default_latents_path(args.data)
    except ModelError as exc:
        print(f"twinviz embed: error: {exc}", file=sys.stderr)
        return 2
    if methods:
        say(f"projections: {', '.join(methods)}" + (" (UMAP compiles on first use: ~20-60 s)" if "umap" in methods else ""))
        latents = add_projections(latents, methods, n_neighbors=args.umap_neighbors, min_dist=args.umap_min_dist,
                                  metric=args.umap_metric, seed=args.seed, fit_stars=args.umap_fit_stars)
    save_latents(latents, out)
    say(f"wrote {out}: z {tuple(latents['z'].shape)}"
        + "".join(f", {m} {tuple(latents[m].shape)}" for m in ("pca", "umap") if m in latents))
    return 0


def _encode_distributed(args, bundle, ds, say, report):
    """Encoding and the reconstruction errors in one pass on a dask cluster; the bundle adds the rest."""
    from twinviz.model import ModelError

    try:
        from twinviz.latents.distributed import cluster_client, encode_on_cluster
        import distributed  # noqa: F401
    except ImportError:
        raise ModelError("--scheduler distributed: the 'distributed' package is not installed. "
                         "Fix: pip install 'twinviz[scale]' (or pip install distributed)") from None
    device = "cpu" if args.device == "auto" else args.device
    with cluster_client(args.scheduler_address, args.workers) as client:
        say(f"dask cluster: {len(client.scheduler_info()['workers'])} workers at {client.scheduler.address}")
        latents, recon = encode_on_cluster(bundle.directory, ds, client, batch_size=args.batch_size,
                                           chunk=args.chunk, device=device, progress=report)
    return bundle.with_latents(latents, ds, rank_by=args.rank_by, recon=recon)
