"""The defaults study: which training settings make the latent robust across the science suite's
regimes, chosen on the *validation* split only.

  python benchmarks/study_defaults.py --size smoke --jobs 2          # does it run (minutes, CPU)
  python benchmarks/study_defaults.py --size quick --jobs 8          # the study (GPU: minutes)

For every cell of the suite (benchmarks/bench_science.py: {giants, dwarfs} × {independent, low-d}
× {noiseless, SNR 50 realistic}) and every variant below, one fader network is trained on the
cell's training split (the suite's own files and sizes) and scored on the cell's validation split
with three ways of scaling z before the L1 ranking:

  raw    z as the encoder gives it (what twinviz uses today);
  std    each latent dimension divided by its standard deviation over the training stars;
  white  z whitened with the training stars' covariance (PCA whitening, eigenvalues floored);
  metric the model's twin metric (fitted by training on the training twins, its size chosen on the
         validation split — so this column has seen the validation twins; raw z where the fit kept
         none). Rows written before this column existed have no "metric" entry.

The baselines (polynomial residuals, polynomial residuals on principal components with degree and
components chosen on the same validation split) are scored on the validation split too, and each
(variant, scaling) gets per cell the ratio of its rank-1 fraction to the strongest baseline's. The
winner maximises the geometric mean of that ratio over cells (ties: the larger minimum). The test
split is never read here. Results: ``--out``/study.jsonl (one line per training, resumable) and
``--report`` (Markdown).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]

# Variants: TrainConfig fields that differ from the current defaults. One-at-a-time around the
# defaults along each axis the issue names (adversary strength, schedule, steps; latent size),
# plus the combinations the single axes point to, and the PCA basis without whitening (whitening
# gives the noise-dominated trailing components the same weight as the leading ones).
VARIANTS = {
    "default": {},
    "lambda0": {"adversary_weight": 0.0},
    "lam0.1": {"adversary_weight": 0.1},
    "lam1": {"adversary_weight": 1.0},
    "lam0.1-adv5": {"adversary_weight": 0.1, "adversary_steps": 5},
    "lam1-adv5": {"adversary_weight": 1.0, "adversary_steps": 5},
    "lam1-ramp": {"adversary_weight": 1.0, "ramp": 0.5},
    "lat8": {"latent_dim": 8},
    "lat16-lam0.1": {"latent_dim": 16, "adversary_weight": 0.1},
    "lat8-lam0.1": {"latent_dim": 8, "adversary_weight": 0.1},
    "lat64": {"latent_dim": 64},
    "nowhiten": {"basis_whiten": False},
    "nowhiten-lam0.1": {"basis_whiten": False, "adversary_weight": 0.1},
    # the front end (issue 25): a wider frozen PCA basis, whitened or not, and pixel space
    "basis512": {"basis_dim": 512},
    "basis1024": {"basis_dim": 1024},
    "basis1024-nowhiten": {"basis_dim": 1024, "basis_whiten": False},
    "pixel": {"basis_dim": 0, "flux_scaling": "pixel"},
}
SCALINGS = ("raw", "std", "white", "metric")


def scaled(z_train, z, how: str):
    import numpy as np

    z_train = np.asarray(z_train, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    if how == "raw":
        return z.astype(np.float32)
    mu = z_train.mean(0)
    if how == "std":
        sd = z_train.std(0)
        return ((z - mu) / np.maximum(sd, 1e-8 * max(sd.max(), 1e-30))).astype(np.float32)
    cov = np.cov(z_train - mu, rowvar=False)
    w, v = np.linalg.eigh(np.atleast_2d(cov))
    w = np.maximum(w, 1e-6 * max(w.max(), 1e-30))
    return (((z - mu) @ v) / np.sqrt(w)).astype(np.float32)


def steps_per_run(train_pairs: int, epochs: int) -> int:
    from twinviz.training import TrainConfig

    batch = TrainConfig.__dataclass_fields__["batch_size"].default  # the trainings use the default
    return math.ceil(2 * train_pairs / batch) * epochs


def run_one(task: dict) -> dict:
    """Train one (cell, variant, seed) and score its z on the validation split (a worker)."""
    import numpy as np

    import torch

    from twinviz.evaluation.compute import evaluate_representation
    from twinviz.latents import encode_dataset
    from twinviz.latents.encode import twin_vectors
    from twinviz.bundle import ModelBundle
    from twinviz.spectra.dataset import load_spectra
    from twinviz.training import TrainConfig, train
    from twinviz.training.trainer import resolve_device

    torch.set_num_threads(task["threads"])
    # the study predates the twin term: keep the paper's objective it measured (--twin-term auto
    # would use the training pairs)
    overrides = {"twin_weight": 0.0, **VARIANTS[task["variant"]]}
    ramp = overrides.pop("ramp", None)
    if ramp:
        overrides["adversary_ramp_steps"] = int(ramp * steps_per_run(task["train_pairs"], task["epochs"]))
    out = Path(task["run_dir"])
    t0 = time.perf_counter()
    train(TrainConfig(data=task["train"], val=task["val"], out=str(out), epochs=task["epochs"], seed=task["seed"],
                      num_threads=task["threads"], device=task["device"], progress=False, **overrides),
          overwrite=True)
    seconds = time.perf_counter() - t0
    bundle = ModelBundle.open(out / "model")
    train_ds, val_ds = load_spectra(task["train"]), load_spectra(task["val"])
    z_train = encode_dataset(bundle.model, train_ds)["z"].values
    latents_val = bundle.embed(val_ds, ood=False)
    z_val = latents_val["z"].values
    groups = np.asarray(val_ds["group"].values, dtype=np.int64)
    scores = {}
    for how in SCALINGS:
        vectors = twin_vectors(latents_val) if how == "metric" else scaled(z_train, z_val, how)
        f = evaluate_representation(how, vectors, groups).fractions
        scores[how] = {"rank1": f.rank1, "within_0p1": f.within_0p1, "within_1": f.within_1}
    return {"cell": task["cell"], "variant": task["variant"], "seed": task["seed"], "seconds": seconds,
            "device": str(resolve_device(task["device"])), "overrides": VARIANTS[task["variant"]], "val": scores}


def val_baselines(cell: dict, data: dict, root: Path) -> dict:
    """Rank-1 (and more) of the pixel baselines on the validation split; cached per cell."""
    import numpy as np

    from twinviz.evaluation.baselines import choose_polynomial_pca, polynomial_pca_residuals, polynomial_residuals
    from twinviz.evaluation.compute import evaluate_representation
    from twinviz.spectra.dataset import load_spectra

    path = root / "val_baselines.json"
    if path.exists():
        return json.loads(path.read_text())
    val = load_spectra(data["val"])
    groups = np.asarray(val["group"].values, dtype=np.int64)
    choice = choose_polynomial_pca(val)
    out = {"poly_pca_choice": {"degree": choice["degree"], "n_components": choice["n_components"]}}
    for key, vectors in (("polynomial", polynomial_residuals(val, 2)),
                         ("polynomial_pca", polynomial_pca_residuals(val, choice["degree"], choice["n_components"]))):
        f = evaluate_representation(key, vectors, groups).fractions
        out[key] = {"rank1": f.rank1, "within_0p1": f.within_0p1, "within_1": f.within_1}
    path.write_text(json.dumps(out, indent=2))
    return out


def summarise(rows: list[dict], baselines: dict) -> list[dict]:
    """Per (variant, scaling): mean val rank-1 per cell and its ratio to the strongest baseline."""
    cells = sorted(baselines)
    table = []
    for variant in VARIANTS:
        # only the seeds that finished in every cell, so each cell averages the same trainings
        seeds = [s for s in sorted({r["seed"] for r in rows if r["variant"] == variant})
                 if {r["cell"] for r in rows if r["variant"] == variant and r["seed"] == s} >= set(cells)]
        for how in SCALINGS:
            per_cell = {}
            for cell in cells:
                vals = [r["val"][how]["rank1"] for r in rows
                        if r["variant"] == variant and r["cell"] == cell and r["seed"] in seeds and how in r["val"]]
                if vals:
                    per_cell[cell] = sum(vals) / len(vals)
            if len(per_cell) != len(cells):
                continue
            ratios = {}
            for cell in cells:
                strongest = max(baselines[cell]["polynomial"]["rank1"], baselines[cell]["polynomial_pca"]["rank1"])
                ratios[cell] = per_cell[cell] / strongest if strongest > 0 else float("inf")
            finite = [max(r, 1e-3) for r in ratios.values()]
            gmean = math.exp(sum(math.log(r) for r in finite) / len(finite))
            table.append({"variant": variant, "scaling": how, "rank1": per_cell, "ratio": ratios,
                          "gmean_ratio": gmean, "min_ratio": min(ratios.values()),
                          "seeds": len(seeds)})
    table.sort(key=lambda t: (t["gmean_ratio"], t["min_ratio"]), reverse=True)
    return table


def render(table: list[dict], baselines: dict, sizes: dict, size: str, devices: set) -> str:
    cells = sorted(baselines)
    short = {c: c.replace("independent", "ind").replace("noiseless", "nl").replace("snr50-realistic", "snr50")
             for c in cells}
    lines = ["# The defaults study", "",
             "Made by `benchmarks/study_defaults.py` (this file is written by it). Every number is on the "
             "**validation** split of each suite cell; the test split is not read.", "",
             f"Size `{size}`: {sizes['train']} training pairs, {sizes['val']} validation pairs "
             f"(N = {2 * sizes['val']} stars ranked), {sizes['epochs']} epochs per training, one training "
             f"per (cell, variant) unless the seeds column says more; trained on {', '.join(sorted(devices))}. "
             "Variants change only the fields named; everything else is the TrainConfig default of the "
             "commit that ran the study. Scalings act on z before the L1 ranking (raw; std: per-dimension "
             "standardisation; white: PCA whitening), both fitted on the training stars' latents; metric: the "
             "model's twin metric, fitted on the training twins with its size chosen on this validation split.", "",
             "Rank-1 % on validation per cell; ratio = variant ÷ strongest baseline on the same split; "
             "sorted by the geometric mean of the ratio over cells.", "",
             "| variant | z scaling | seeds | " + " | ".join(short[c] for c in cells) + " | geo-mean ratio | min ratio |",
             "|---|---|---|" + "---|" * len(cells) + "---|---|"]
    for t in table:
        lines.append(f"| {t['variant']} | {t['scaling']} | {t['seeds']} | "
                     + " | ".join(f"{100 * t['rank1'][c]:.1f}" for c in cells)
                     + f" | {t['gmean_ratio']:.2f} | {t['min_ratio']:.2f} |")
    for key in ("polynomial_pca", "polynomial"):
        lines.append(f"| *{key} (baseline)* | | | " + " | ".join(f"{100 * baselines[c][key]['rank1']:.1f}" for c in cells)
                     + " | | |")
    lines += ["", "Variants: " + "; ".join(f"`{k}` = {v or 'the defaults'}" for k, v in VARIANTS.items())
              + " (`ramp` = λ ramped linearly from 0 over that fraction of the run's steps).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from bench_science import SIZES, cells, dataset

    from twinviz.atomic import write_text_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=tuple(SIZES), default="quick")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "science",
                        help="the suite's folder: its datasets are reused")
    parser.add_argument("--cells", nargs="*", default=None, help="cell names (default: all 8)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per training")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--render-only", action="store_true", help="write the report from the finished trainings")
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "results" / "defaults-study.md")
    args = parser.parse_args(argv)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    chosen = [c for c in cells() if args.cells is None or c["name"] in args.cells]
    if args.cells and len(chosen) != len(args.cells):
        parser.error(f"unknown cell in {args.cells}; known: {', '.join(c['name'] for c in cells())}")
    sizes = SIZES[args.size]
    out = args.out / args.size
    log = out / "study.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["cell"], r["variant"], r["seed"]) for r in rows}
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=ctx) as pool:
        data = {}
        futures = {}
        for cell in chosen:  # datasets first, in parallel (the synthesizer is CPU work)
            root = out / cell["name"]
            root.mkdir(parents=True, exist_ok=True)
            for split in (("val",) if args.render_only else ("train", "val")):
                futures[pool.submit(dataset, cell, split, sizes[split], root)] = (cell["name"], split)
        for fut in as_completed(futures):
            name, split = futures[fut]
            data.setdefault(name, {})[split] = str(fut.result())
        base_futures = {pool.submit(val_baselines, cell, data[cell["name"]], out / cell["name"]): cell["name"]
                        for cell in chosen}
        tasks = [{"cell": c["name"], "variant": v, "seed": s, "epochs": sizes["epochs"], "train_pairs": sizes["train"],
                  "train": data[c["name"]]["train"], "val": data[c["name"]]["val"], "threads": args.threads,
                  "device": args.device, "run_dir": str(out / c["name"] / "study" / f"{v}-seed{s}")}
                 for s in args.seeds for v in args.variants for c in chosen if (c["name"], v, s) not in done
                 and not args.render_only]
        run_futures = [pool.submit(run_one, t) for t in tasks]
        baselines = {base_futures[f]: f.result() for f in as_completed(base_futures)}
        for fut in as_completed(run_futures):
            row = fut.result()
            rows.append(row)
            with open(log, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{row['cell']} {row['variant']} seed {row['seed']}: "
                  + ", ".join(f"{k} {100 * v['rank1']:.1f}%" for k, v in row["val"].items())
                  + f" ({row['seconds']:.0f} s)", flush=True)
    table = summarise(rows, baselines)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.report, render(table, baselines, sizes, args.size, {r["device"] for r in rows}))
    if table:
        best = table[0]
        write_text_atomic(out / "winner.json", json.dumps(best, indent=2))
        print(f"winner on validation: {best['variant']} with z scaling {best['scaling']} "
              f"(geo-mean ratio {best['gmean_ratio']:.2f}, min {best['min_ratio']:.2f})")
    print(args.report.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
