"""The front-end study of issue 25: front ends and the twin term, scored on validation in the three
supervision regimes of the science suite (docs/model.md, "The front end and the twin term").

Every (cell, variant, seed) trains one fader network on the suite's training split and scores the
**validation** split (the test split is never made or read):

* none — raw z by L1;
* few  — z in a metric fitted on the cell's few twins only (``regimes.fit_few_metric``: 5-fold CV
  over the 25 few-twin groups, ranked among 2 000 unlabelled training stars);
* many — z in the model's own twin metric (training twins; its size chosen on validation).

Beside them, once per cell: the strongest unsupervised pixel baseline (polynomial / polynomial-PCA
residuals by L1) and the RSCA-like few-twin peer, both on the same validation stars. A variant
whose loss uses twins (``twin_weight`` > 0) is fair only in the regime its twins belong to: the
training twins → *many*; ``twin_set`` = the few twins → *few*.

    python benchmarks/study_frontend.py --size quick --seeds 0 --jobs 2
    python benchmarks/study_frontend.py --size quick --render-only   # the tables from what finished
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_science as bs  # noqa: E402
import regimes  # noqa: E402

FEW = "FEW"  # stands for the cell's few-twin file in a variant
VARIANTS = {  # TrainConfig overrides
    "old-default": {"residual_degree": 0, "basis_whiten": True},
    "old-nowhiten": {"residual_degree": 0, "basis_whiten": False},
    "resid3-whiten": {"residual_degree": 3, "basis_whiten": True},
    "default": {},  # residual_degree 3, basis not whitened (since 2026-12-07)
    "old-twin": {"residual_degree": 0, "basis_whiten": True, "twin_weight": 0.1},
    "resid3-whiten-twin": {"residual_degree": 3, "basis_whiten": True, "twin_weight": 0.1},
    "default-twin": {"twin_weight": 0.1},
    "default-fewtwins": {"twin_weight": 0.1, "twin_set": FEW},
    # the rest of the study list on the new front end (2026-12-07, fourth pass)
    "latent16": {"latent_dim": 16},
    "latent64": {"latent_dim": 64},
    "adv0.003": {"adversary_weight": 0.003},
    "adv0.03": {"adversary_weight": 0.03},
    "basis512": {"basis_dim": 512},
    "basis1024": {"basis_dim": 1024},
    "basis-trainable": {"basis_trainable": True},  # a learned linear front end, PCA-initialised
    "epochs2x": {"epochs": "2x"},  # twice the size's epochs
    "conv8": {"conv_channels": 8},  # a learned convolutional front end beside the basis
    "fewtwins0.03": {"twin_weight": 0.03, "twin_set": FEW},  # the few twins in the loss, weaker
    "fewtwins0.01": {"twin_weight": 0.01, "twin_set": FEW},
    # training size: half the training pairs, at the same epochs and at the same number of steps
    "train-half": {"train_fraction": 0.5},
    "train-half-epochs2x": {"train_fraction": 0.5, "epochs": "2x"},
    # nuisance invariance (fifth pass): z kept still under continuum errors, broadening and masks
    # added on the fly (twinviz/training/augment.py); no twins
    "invariance0.3": {"invariance_weight": 0.3},
    "invariance1": {"invariance_weight": 1.0},
    "invariance3": {"invariance_weight": 3.0},
    "invariance0.1": {"invariance_weight": 0.1},
    # one kind of nuisance at a time, ν 0.3
    "invariance0.3-continuum": {"invariance_weight": 0.3, "invariance_nuisances": "continuum"},
    "invariance0.3-broadening": {"invariance_weight": 0.3, "invariance_nuisances": "broadening"},
    "invariance0.3-masks": {"invariance_weight": 0.3, "invariance_nuisances": "masks"},
    "epochs2x-invariance0.3-continuum": {"epochs": "2x", "invariance_weight": 0.3, "invariance_nuisances": "continuum"},
}
# Cells whose information limit (bench_science's limit row, default size) is below 20 % rank 1: their
# ranks are a few stars of the validation split, so the study's means are also given without them.
LOW_LIMIT_CELLS = ("giants-lowd-snr50-realistic", "dwarfs-lowd-snr50-realistic")
FAIR = {"twin_set": "few", "twin_weight": "many"}  # a loss with twins is fair in this regime only


def prepare(cell: dict, size: str, out: Path) -> tuple[dict, dict]:
    """train/val/few of the cell (no test split) and the validation peers, cached."""
    from twinviz.spectra.dataset import load_spectra

    import study_defaults

    sizes = bs.SIZES[size]
    root = out / size / cell["name"]
    root.mkdir(parents=True, exist_ok=True)
    data = {split: bs.dataset(cell, split, sizes[split], root) for split in ("train", "val")}
    data["few"] = regimes.few_dataset(cell, root, bs.NOISES)
    path = root / "val_peers.json"
    if not path.exists():
        base = study_defaults.val_baselines(cell, data, root)
        few = regimes.score_few_peer({**data, "test": data["val"]}, root / "few_peer_val.json")
        peers = {"unsupervised": max(base["polynomial"]["rank1"], base["polynomial_pca"]["rank1"]),
                 "rsca_like": few["rank1"], "val_stars": int(load_spectra(data["val"]).sizes["star"])}
        path.write_text(json.dumps(peers, indent=2))
    return data, json.loads(path.read_text())


def run_one(task: dict) -> dict:
    """Train one (cell, variant, seed) and score it in the three regimes (a worker)."""
    import numpy as np
    import torch

    from twinviz.bundle import ModelBundle
    from twinviz.evaluation.compute import evaluate_representation
    from twinviz.latents.encode import twin_vectors
    from twinviz.spectra.dataset import load_spectra
    from twinviz.training import TrainConfig, train

    torch.set_num_threads(task["threads"])
    data, peers = task["data"], task["peers"]
    out = Path(task["run_dir"])
    # twin_weight 0 unless the variant sets it: a variant without twins keeps the paper's objective
    # (`twinviz train`'s --twin-term auto would use the training pairs otherwise)
    overrides = {"epochs": task["epochs"], "twin_weight": 0.0}
    for key, value in VARIANTS[task["variant"]].items():
        overrides[key] = str(data["few"]) if value == FEW else 2 * task["epochs"] if value == "2x" else value
    train_file = data["train"]
    fraction = overrides.pop("train_fraction", None)
    if fraction is not None:  # the first groups of the training split (whole twin pairs)
        from twinviz.spectra.dataset import save_spectra

        full = load_spectra(train_file)
        ids = np.unique(full["group"].values)
        keep = ids[:max(1, round(fraction * len(ids)))]
        train_file = save_spectra(full.isel(star=np.flatnonzero(np.isin(full["group"].values, keep))),
                                  out.parent / f"{out.name}-train.nc")
    t0 = time.perf_counter()
    train(TrainConfig(data=str(train_file), val=str(data["val"]), out=str(out), seed=task["seed"],
                      num_threads=task["threads"], progress=False, **overrides), overwrite=True)
    seconds = time.perf_counter() - t0
    bundle = ModelBundle.open(out / "model")
    val, few = load_spectra(data["val"]), load_spectra(data["few"])
    pool = load_spectra(data["train"]).isel(star=slice(0, regimes.POOL))
    groups = np.asarray(val["group"].values, np.int64)
    latents = bundle.embed(val, ood=False)
    scores = {"none": evaluate_representation("raw", latents["z"].values, groups).fractions.rank1,
              "many": evaluate_representation("metric", twin_vectors(latents), groups).fractions.rank1}
    zf, zp, zv = (regimes.encoded_z(out / "model", ds) for ds in (few, pool, val))
    scores["few"] = regimes._few_rows("few", zf, zp, zv, few, pool, val)["rank1"]
    fair = sorted({FAIR[k] for k in VARIANTS[task["variant"]] if k in FAIR})
    return {"cell": task["cell"], "variant": task["variant"], "seed": task["seed"], "seconds": seconds,
            "fair": fair[:1] or ["none", "few", "many"], "val": scores, "peers": peers}


def summarise(rows: list[dict], reference: str = "old-default") -> tuple[list[str], list[str]]:
    """Per-cell rows (mean over seeds) and geometric-mean ratios to ``reference`` per regime."""
    by = defaultdict(list)
    for r in rows:
        by[(r["cell"], r["variant"])].append(r)
    cells = sorted({r["cell"] for r in rows})
    mean = lambda rs, k: sum(r["val"][k] for r in rs) / len(rs)  # noqa: E731
    table = []
    for cell in cells:
        for variant in VARIANTS:
            rs = by.get((cell, variant))
            if not rs:
                continue
            p = rs[0]["peers"]
            cols = []
            for regime, peer in (("none", p["unsupervised"]), ("few", p["rsca_like"]), ("many", None)):
                text = f"{100 * mean(rs, regime):.1f}" + (f" ({100 * peer:.1f})" if peer is not None else "")
                cols.append(text if regime in rs[0]["fair"] else f"[{text}]")
            table.append(f"| {cell} | {variant} | {len(rs)} | " + " | ".join(cols)
                         + f" | {sum(r['seconds'] for r in rs) / len(rs):.0f} |")
    floor = 1.0 / 500  # one star in 500: keeps a 0 % cell from sending the log to −∞
    geo = []
    for variant in VARIANTS:
        logs, binding = defaultdict(list), defaultdict(list)
        for cell in cells:
            a, b = by.get((cell, variant)), by.get((cell, reference))
            seeds = {r["seed"] for r in a or []} & {r["seed"] for r in b or []}
            if not seeds:
                continue
            a = [r for r in a if r["seed"] in seeds]
            b = [r for r in b if r["seed"] in seeds]
            for regime in ("none", "few", "many"):
                ratio = math.log(max(mean(a, regime), floor) / max(mean(b, regime), floor))
                logs[regime].append(ratio)
                if cell not in LOW_LIMIT_CELLS:
                    binding[regime].append(ratio)
        if logs:
            fair = next(r["fair"] for r in rows if r["variant"] == variant)
            cols = [(f"{math.exp(sum(d[k]) / len(d[k])):.2f}" if k in fair and d[k] else "–")
                    for d in (logs, binding) for k in ("none", "few", "many")]
            geo.append(f"| {variant} | {len(logs['none'])} | " + " | ".join(cols) + " |")
    return table, geo


def render(rows: list[dict], size: str, reference: str = "old-default") -> str:
    table, geo = summarise(rows, reference)
    ratios = ([f"Geometric mean over the cells of the ratio to `{reference}` (fair regimes only):", "",
               "| variant | cells | none | few | many | none, binding cells | few, binding | many, binding |",
               "|---|---|---|---|---|---|---|---|", *geo] if geo else
              [f"No `{reference}` rows in this run's records, so no ratios here (docs/model.md compares "
               "these rows with the reference's from another report of the same data and seeds)."])
    lines = [f"# Front-end study ({size} size, validation split)", "",
             "Written by `benchmarks/study_frontend.py` (docs/model.md, \"The front end and the twin term\"). "
             "Rank 1 %, mean over the seeds; peers in parentheses (none: strongest unsupervised pixel "
             "baseline; few: RSCA-like); [brackets]: the variant's loss used twins that this regime does not "
             "have, so the number is not a fair row.", "",
             "| cell | variant | seeds | none | few | many | train s |", "|---|---|---|---|---|---|---|", *table, "",
             *ratios, "",
             "Binding cells: all but " + " and ".join(LOW_LIMIT_CELLS) + ", whose information limit is below "
             "20 % rank 1 (at the default size): there a variant's rank 1 is a few stars of the validation split.", "",
             "Variants: " + "; ".join(f"`{k}` = {v or 'the defaults'}" for k, v in VARIANTS.items()
                                      if any(r["variant"] == k for r in rows))]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=tuple(bs.SIZES), default="quick")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "frontend")
    parser.add_argument("--cells", nargs="*", default=None, help="cell names (default: all 8)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per training")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--reference", default="old-default", help="the variant the geometric means divide by")
    parser.add_argument("--report", type=Path, default=None, help="markdown file to write (default: print)")
    args = parser.parse_args(argv)
    unknown = (set(args.variants) | {args.reference}) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    chosen = [c for c in bs.cells() if args.cells is None or c["name"] in args.cells]
    log = args.out / args.size / "study.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["cell"], r["variant"], r["seed"]) for r in rows}
    if not args.render_only:
        tasks = []
        for cell in chosen:
            data, peers = prepare(cell, args.size, args.out)
            for seed in args.seeds:
                for variant in args.variants:
                    if (cell["name"], variant, seed) not in done:
                        tasks.append({"cell": cell["name"], "variant": variant, "seed": seed, "threads": args.threads,
                                      "epochs": bs.SIZES[args.size]["epochs"], "peers": peers,
                                      "data": {k: str(v) for k, v in data.items()},
                                      "run_dir": str(args.out / args.size / cell["name"] / f"{variant}-seed{seed}")})
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for row in pool.map(run_one, tasks):
                rows.append(row)
                with log.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{row['cell']} {row['variant']} seed {row['seed']}: "
                      + ", ".join(f"{k} {100 * v:.1f} %" for k, v in row["val"].items()), flush=True)
    text = render(rows, args.size, args.reference)
    if args.report:
        args.report.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
