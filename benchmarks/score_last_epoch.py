"""Which epoch to keep: score the *last* epoch of finished defaults-study trainings in the twin metric.

Every training of ``benchmarks/study_defaults.py`` keeps the last epoch's weights in its
``checkpoint/`` beside the epoch it kept in ``model/``. For each training this script fits the twin
metric to the last epoch's weights exactly as training does (``fit_model_twin_metric``: training
twins, size chosen on validation), ranks the cell's **validation** stars in it, and prints one
table: rank 1 % of the kept epoch (from the study's ``study.jsonl``) beside the last epoch's,
mean ± sd over seeds. Results are appended to ``--out`` (one JSON line per training) and reused, so
an interrupted run resumes. The test split is not read.

    python benchmarks/score_last_epoch.py --study SUITE/default --variants default lat64
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def score_last(run: Path, cell: Path, val) -> dict:
    """The last epoch of ``run`` in its refitted twin metric, on the cell's validation stars ``val``."""
    import numpy as np

    from twinviz.evaluation.compute import evaluate_representation
    from twinviz.bundle import ModelBundle
    from twinviz.latents.encode import twin_vectors
    from twinviz.training.checkpoint import load_checkpoint
    from twinviz.bundle.fit import fit_model_twin_metric

    model, _, progress, _ = load_checkpoint(run / "checkpoint")
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        fit_model_twin_metric(tmp, str(cell / "train.nc"), str(cell / "val.nc"))
        vectors = twin_vectors(ModelBundle.open(tmp).embed(val, ood=False))
    f = evaluate_representation("metric", vectors, np.asarray(val["group"].values, dtype=np.int64)).fractions
    return {"rank1": f.rank1, "within_0p1": f.within_0p1, "within_1": f.within_1,
            "last_step": progress["step"], "kept_epoch": progress["best"].get("epoch")}


def _pct(values) -> str:
    values = [100 * v for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, required=True, help="the suite size folder (cells with study/)")
    parser.add_argument("--variants", nargs="*", default=["default", "lat64"])
    parser.add_argument("--out", type=Path, default=None, help="JSON lines (default: STUDY/last_epoch.jsonl)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from study_defaults import summarise  # this folder's defaults study: the same ratio and geo-mean
    from twinviz.spectra.dataset import load_spectra

    torch.set_num_threads(args.threads)
    out = args.out or args.study / "last_epoch.jsonl"
    done = {(r["cell"], r["run"]): r for r in map(json.loads, out.read_text().splitlines())} if out.exists() else {}
    kept = {}
    for r in map(json.loads, (args.study / "study.jsonl").read_text().splitlines()):
        kept[(r["cell"], f"{r['variant']}-seed{r['seed']}")] = r["val"]["metric"]["rank1"]
    cells = sorted(p for p in args.study.iterdir() if (p / "study").is_dir())
    for cell in cells:
        todo = [run for run in sorted((cell / "study").iterdir())
                if run.name.rsplit("-seed", 1)[0] in args.variants and (cell.name, run.name) not in done
                and (run / "checkpoint").is_dir() and (cell.name, run.name) in kept]
        val = load_spectra(cell / "val.nc") if todo else None  # once per cell
        for run in todo:
            rec = {"cell": cell.name, "run": run.name, "last": score_last(run, cell, val)}
            done[(cell.name, run.name)] = rec
            with out.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"{cell.name} {run.name}: last epoch {100 * rec['last']['rank1']:.1f} %", flush=True)
    print("\n| cell | " + " | ".join(f"{v}: kept | {v}: last epoch" for v in args.variants) + " |")
    print("|---|" + "---|---|" * len(args.variants))
    for cell in cells:
        row = []
        for variant in args.variants:
            runs = sorted(k[1] for k in done if k[0] == cell.name and k[1].rsplit("-seed", 1)[0] == variant)
            row += [_pct([kept[(cell.name, r)] for r in runs]) if runs else "",
                    _pct([done[(cell.name, r)]["last"]["rank1"] for r in runs]) if runs else ""]
        print(f"| {cell.name} | " + " | ".join(row) + " |")
    # Geometric mean over cells of (last-epoch rank 1 ÷ strongest pixel baseline), as the study ranks variants.
    baselines = {c.name: json.loads((c / "val_baselines.json").read_text()) for c in cells
                 if (c / "val_baselines.json").exists()}
    rows = [{"cell": c, "variant": r.rsplit("-seed", 1)[0], "seed": int(r.rsplit("-seed", 1)[1]),
             "val": {"metric": rec["last"]}} for (c, r), rec in done.items()
            if c in baselines and r.rsplit("-seed", 1)[0] in args.variants]
    for t in summarise(rows, baselines):
        print(f"\n{t['variant']}, last epoch: geo-mean ratio {t['gmean_ratio']:.2f}, min ratio "
              f"{t['min_ratio']:.2f} ({t['seeds']} seeds in every cell)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
