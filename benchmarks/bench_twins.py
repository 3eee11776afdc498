"""Speed of twin search and encoding, each beside the plain alternative, printed as a table.

  python benchmarks/bench_twins.py            # full sizes: 25 000 stars ranked, 1 000 000 searched
  python benchmarks/bench_twins.py --quick    # small sizes, a smoke test

(a) all-stars twin ranking (target ≤ 10 s for 25 000 stars): TwinIndex.twin_ranks vs chunked
    torch.cdist(p=1) + counting (float32 only, no exact tie handling);
(b) one-star top-k over 1 000 000 random latents (target ≤ 50 ms): TwinIndex.search vs torch
    |Z − q|.sum + topk and numpy |Z − q|.sum + argpartition;
(c) encoding throughput (stars/s) of the default-size model: encode_dataset streaming from a
    netCDF file vs encode_arrays on an in-memory array.
Latents are random normal, float32, d = --dim (the model's default latent size is 32).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, repeat=1):
    """Best wall time of `repeat` calls (s) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def plain_cdist_ranks(z, groups, block=1024):
    import torch

    zt = torch.from_numpy(z)
    order = np.argsort(groups, kind="stable")
    partner = np.empty_like(order)
    partner[order[0::2]], partner[order[1::2]] = order[1::2], order[0::2]
    ranks = np.empty(len(z), dtype=np.int64)
    for a in range(0, len(z), block):
        d = torch.cdist(zt[a:a + block], zt, p=1)
        # twin distance read from the same float32 matrix, so the twin never counts as closer
        twin_d = d.gather(1, torch.from_numpy(partner[a:a + block])[:, None])
        ranks[a:a + block] = (d < twin_d).sum(1).numpy()  # the star itself (0) stands in for the +1
    return ranks


def bench_ranks(n, dim, rows):
    from twinviz.twins.index import TwinIndex
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, dim)).astype(np.float32)
    groups = np.repeat(np.arange(n // 2), 2)
    t_build, index = timed(lambda: TwinIndex(z, backend="faiss"))
    t_ours, ranks = timed(lambda: index.twin_ranks(groups))
    rows.append((f"(a) twin ranks, {n} stars, d={dim}", "TwinIndex faiss (exact)", t_ours, f"≤ 10 s; build {t_build * 1e3:.0f} ms"))
    t_torch_idx, index_t = timed(lambda: TwinIndex(z, backend="torch"))
    t_ours_t, ranks_t = timed(lambda: index_t.twin_ranks(groups))
    rows.append(("", "TwinIndex torch CPU (exact)", t_ours_t, "same ranks" if np.array_equal(ranks, ranks_t) else "MISMATCH"))
    t_plain, ranks_plain = timed(lambda: plain_cdist_ranks(z, groups))
    agree = np.mean(ranks_plain == ranks)
    rows.append(("", "plain torch.cdist p=1 + count", t_plain, f"agrees on {100 * agree:.2f} % of stars"))


def bench_search(n, dim, k, rows):
    import torch

    from twinviz.twins.index import TwinIndex
    rng = np.random.default_rng(1)
    z = rng.standard_normal((n, dim)).astype(np.float32)
    star = 12345 % n
    # The faiss index is built on the first search; time that once, then the warm searches.
    t_build, index = timed(lambda: TwinIndex(z, backend="faiss"))
    t_first, _ = timed(lambda: index.search(star, k))
    t_build += t_first
    t_ours, (ids, _) = timed(lambda: index.search(star, k), repeat=5)
    rows.append((f"(b) one-star top-{k}, {n} stars, d={dim}", "TwinIndex.search faiss (exact)", t_ours,
                 f"≤ 50 ms; build + first search {t_build:.2f} s"))
    index_t = TwinIndex(z, backend="torch")
    index_t.search(star, k)
    t_ours_t, (ids_t, _) = timed(lambda: index_t.search(star, k), repeat=5)
    rows.append(("", "TwinIndex.search torch CPU (exact)", t_ours_t, "same ids" if np.array_equal(ids, ids_t) else "MISMATCH"))
    zt = torch.from_numpy(z)

    def plain_torch():
        d = (zt - zt[star]).abs().sum(1)
        d[star] = float("inf")
        return torch.topk(d, k, largest=False).indices.numpy()

    plain_torch()
    t_torch, _ = timed(plain_torch, repeat=5)
    rows.append(("", "plain torch abs(Z−q).sum + topk", t_torch, ""))

    def plain_numpy():
        d = np.abs(z - z[star]).sum(1)
        d[star] = np.inf
        part = np.argpartition(d, k)[:k]
        return part[np.argsort(d[part])]

    t_np, _ = timed(plain_numpy, repeat=3)
    rows.append(("", "plain numpy abs(Z−q).sum + argpartition", t_np, ""))


def bench_encode(n, rows):
    import torch

    from twinviz.latents.encode import encode_dataset
    from twinviz.model import FaderNetwork, ModelConfig, encode_arrays
    from twinviz.spectra.dataset import make_spectra, open_spectra, save_spectra
    from twinviz.spectra.grid import get_grid

    grid = get_grid("apogee-aspcap-dr12")
    p = grid.wavelength.size
    rng = np.random.default_rng(2)
    flux = (1 - 0.1 * rng.random((n, p))).astype(np.float32)
    teff, logg = rng.uniform(4000, 5500, n), rng.uniform(1, 3.5, n)
    ds = make_spectra(flux, grid.wavelength, teff, logg, group=np.repeat(np.arange(n // 2), 2))
    torch.manual_seed(0)
    model = FaderNetwork(ModelConfig(n_pixels=p, grid_id=grid.id)).eval()  # default sizes
    with tempfile.TemporaryDirectory() as tmp:
        path = save_spectra(ds, Path(tmp) / "bench.nc")
        lazy = open_spectra(path, chunks={})
        encode_arrays(model, flux[:256], teff[:256], logg[:256])  # warm-up
        t_stream, _ = timed(lambda: encode_dataset(model, open_spectra(path, chunks={}), chunk=4096))
        t_mem, _ = timed(lambda: encode_arrays(model, flux, teff, logg, batch_size=1024))
        del lazy
    rows.append((f"(c) encode {n} stars × {p} px", "encode_dataset, streamed from .nc", t_stream,
                 f"{n / t_stream:,.0f} stars/s"))
    rows.append(("", "plain encode_arrays, in memory", t_mem, f"{n / t_mem:,.0f} stars/s"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--rank-stars", type=int, default=25_000)
    parser.add_argument("--search-stars", type=int, default=1_000_000)
    parser.add_argument("--encode-stars", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=32, help="latent size")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch/faiss threads (0: library default)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rank_stars, args.search_stars, args.encode_stars = 2000, 50_000, 512
    import faiss
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    rows = []
    bench_ranks(args.rank_stars, args.dim, rows)
    bench_search(args.search_stars, args.dim, args.k, rows)
    bench_encode(args.encode_stars, rows)
    print(f"\ntwinviz benchmarks — {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), faiss {faiss.__version__}, "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}\n")
    print("| benchmark | method | time | note |")
    print("|---|---|---|---|")
    for bench, method, seconds, note in rows:
        shown = f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
        print(f"| {bench} | {method} | {shown} | {note} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
