"""The science suite: Table 1 across synthesizer regimes, several training seeds per cell.

  python benchmarks/bench_science.py --quick            # small sizes: a smoke run (~1 h on 2 cores)
  python benchmarks/bench_science.py                    # the suite's default sizes (many hours)
  python benchmarks/bench_science.py --cells giants-lowd-noiseless --seeds 0 1 2

Matrix: population {giants, dwarfs} × chemistry {independent, low-d} × noise {noiseless,
SNR 50 with the ``realistic`` nuisance preset}. Per cell, one training set, one validation set
(best epoch, the polynomial-PCA baseline's degree and components) and one held-out test set are
simulated with fixed seeds; for every training seed a fader network (TrainConfig defaults) and
the λ = 0 conditional autoencoder (the same, adversary weight 0) are trained with the same budget,
and each is scored on the test set beside the pixel baselines (polynomial residuals, polynomial
residuals on principal components, raw flux) and the oracle. Nothing is tuned on the test split.

Resumable: every dataset, run and report is a file under ``--out`` and is reused when present,
so an interrupted suite continues cell by cell. ``--write`` (default on) renders
``docs/results/suite.md`` (mean ± sd over seeds) from whatever cells are complete.

CPU budget per training: ``--epochs`` epochs of ``--pairs`` training pairs with one CPU thread
(``--threads``); the wall time of every training is recorded in the report.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
POPULATIONS = ("giants", "dwarfs")
CHEMISTRIES = ("independent", "low-d")
NOISES = {"noiseless": {"snr": None, "nuisances": None}, "snr50-realistic": {"snr": 50.0, "nuisances": "realistic"}}
SIZES = {  # pairs in train / validation / test, epochs per training
    "smoke": {"train": 150, "val": 60, "test": 100, "epochs": 2},  # the test suite's check that it runs
    "quick": {"train": 1500, "val": 250, "test": 500, "epochs": 15},
    "default": {"train": 10000, "val": 1000, "test": 2500, "epochs": 40},
}
DATA_SEEDS = {"train": 101, "val": 202, "test": 303}
METRICS = ("rank1", "within_0p1", "within_1")


def cells() -> list[dict]:
    return [{"name": f"{p}-{c.replace('-', '')}-{n}", "population": p, "chemistry": c, "noise": n}
            for p in POPULATIONS for c in CHEMISTRIES for n in NOISES]


def dataset(cell: dict, split: str, pairs: int, root: Path) -> Path:
    from twinviz.spectra.dataset import save_spectra
    from twinviz.spectra.simulation import simulate

    path = root / f"{split}.nc"
    if not path.exists():
        noise = NOISES[cell["noise"]]
        ds = simulate(pairs, seed=DATA_SEEDS[split], population=cell["population"], chemistry=cell["chemistry"],
                      snr=noise["snr"], nuisances=noise["nuisances"])
        save_spectra(ds, path)
    return path


def trained(data: dict, out: Path, seed: int, epochs: int, threads: int, adversary_weight=None,
            settings: dict | None = None, device: str = "auto") -> tuple[Path, float]:
    from twinviz.training import TrainConfig, train

    timing = out / "wall_seconds.json"
    if (out / "model" / "model.safetensors").exists() and timing.exists():
        return out / "model", json.loads(timing.read_text())["seconds"]
    kw = dict(settings or {})
    if adversary_weight is not None:
        kw["adversary_weight"] = adversary_weight
    t0 = time.perf_counter()
    train(TrainConfig(data=str(data["train"]), val=str(data["val"]), out=str(out), epochs=epochs, seed=seed,
                      num_threads=threads, progress=False, device=device, **kw), overwrite=True)
    seconds = time.perf_counter() - t0
    timing.write_text(json.dumps({"seconds": seconds}))
    return out / "model", seconds


def run_cell(cell: dict, sizes: dict, seeds, out: Path, threads: int, queries: int, settings: dict | None = None,
             device: str = "auto") -> dict:
    from twinviz.evaluation import evaluate, write_report
    from twinviz.evaluation.baselines import choose_polynomial_pca
    from twinviz.model import FaderNetwork
    from twinviz.spectra.dataset import load_spectra

    root = out / cell["name"]
    root.mkdir(parents=True, exist_ok=True)
    data = {split: dataset(cell, split, sizes[split], root) for split in ("train", "val", "test")}
    choice_path = root / "poly_pca_choice.json"
    if not choice_path.exists():
        choice = choose_polynomial_pca(load_spectra(data["val"]))
        choice["chosen_on"] = "validation split"
        choice_path.write_text(json.dumps(choice, indent=2))
    poly_pca = json.loads(choice_path.read_text())
    test = load_spectra(data["test"])
    results = {"cell": cell, "sizes": sizes, "seeds": {}}
    for seed in seeds:
        report_path = root / f"seed{seed}" / "report.json"
        if not report_path.exists():
            fader_dir, fader_s = trained(data, root / f"seed{seed}" / "fader", seed, sizes["epochs"], threads,
                                         settings=settings, device=device)
            l0_dir, l0_s = trained(data, root / f"seed{seed}" / "lambda0", seed, sizes["epochs"], threads, 0.0,
                                   settings=settings, device=device)
            baselines = ("polynomial", "polynomial_pca", "raw_flux", "oracle") if seed == seeds[0] else ()
            report = evaluate(FaderNetwork.from_pretrained(fader_dir), test,
                              baseline_model=FaderNetwork.from_pretrained(l0_dir), baselines=baselines,
                              poly_pca=poly_pca, pixel_queries=queries)
            report.settings.update(train_seconds={"fader": fader_s, "lambda0": l0_s}, seed=seed,
                                   train_settings=settings or {}, train_device=device)
            write_report(report, report_path.parent)
        results["seeds"][seed] = json.loads(report_path.read_text())
    return results


def _stats(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, sd


def summarize(result: dict) -> dict:
    per_method: dict[str, dict[str, list]] = {}
    seconds: dict[str, list] = {}
    for report in result["seeds"].values():
        for m in report["methods"]:
            for k in METRICS:
                per_method.setdefault(m["key"], {}).setdefault(k, []).append(m[k])
        for key, s in report["settings"].get("train_seconds", {}).items():
            seconds.setdefault(key, []).append(s)
    summary = {key: {k: _stats(v) for k, v in metrics.items()} for key, metrics in per_method.items()}
    baselines = [k for k in summary if k in ("polynomial", "polynomial_pca", "raw_flux")]
    strongest = max(baselines, key=lambda k: summary[k]["rank1"][0]) if baselines else None
    return {"summary": summary, "strongest": strongest, "seconds": {k: _stats(v) for k, v in seconds.items()},
            "n_seeds": len(result["seeds"])}


def render(results: list[dict], sizes: dict, threads: int, settings: dict | None = None,
           device: str = "auto") -> str:
    def pct(stat):
        mean, sd = stat if stat else (None, None)
        if mean is None:
            return ""
        return f"{100 * mean:.1f} ± {100 * sd:.1f}" if sd else f"{100 * mean:.1f}"

    lines = ["# The science suite", "",
             "Made by `benchmarks/bench_science.py` (this file is written by it; do not edit by hand).", "",
             f"Sizes: {sizes['train']} training pairs, {sizes['val']} validation pairs (best epoch; the "
             f"polynomial-PCA baseline's degree and components), {sizes['test']} held-out test pairs "
             f"(N = {2 * sizes['test']} stars, the numbers below); {sizes['epochs']} epochs per training, "
             f"{threads} CPU thread(s), device {device}, "
             + (f"TrainConfig defaults except {json.dumps(settings)}. " if settings else "TrainConfig defaults otherwise. ")
             + "Fader and λ = 0 rows: mean ± sd over "
             "training seeds; baselines are deterministic (one value). Pixel baselines rank a seeded "
             "sample of query stars against all N.", "",
             "| cell | seeds | method | rank 1 % | ≤ 0.1 % | ≤ 1 % | train min/run | fader ÷ strongest baseline (rank 1) |",
             "|---|---|---|---|---|---|---|---|"]
    for result in results:
        s = summarize(result)
        name = result["cell"]["name"]
        strongest = s["strongest"]
        ratio = ""
        if strongest and s["summary"].get("fader"):
            base = s["summary"][strongest]["rank1"][0]
            fader = s["summary"]["fader"]["rank1"][0]
            ratio = f"{fader / base:.1f}× ({strongest}){' — below 2×' if fader < 2 * base else ''}" if base else "∞"
        for key in ("fader", "lambda0", "polynomial_pca", "polynomial", "raw_flux", "oracle"):
            if key not in s["summary"]:
                continue
            m = s["summary"][key]
            minutes = s["seconds"].get(key)
            mins = f"{minutes[0] / 60:.1f}" if minutes and minutes[0] is not None else ""
            lines.append(f"| {name} | {s['n_seeds']} | {key} | {pct(m['rank1'])} | {pct(m['within_0p1'])} | "
                         f"{pct(m['within_1'])} | {mins} | {ratio if key == 'fader' else ''} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from twinviz.atomic import write_text_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: --size quick")
    parser.add_argument("--size", choices=tuple(SIZES), default=None, help="sizes (see SIZES); default 'default'")
    parser.add_argument("--out", type=Path, default=REPO / "bench-out" / "science")
    parser.add_argument("--cells", nargs="*", default=None, help="cell names (default: all 8)")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--queries", type=int, default=1000, help="query stars for pixel baselines")
    parser.add_argument("--report", type=Path, default=REPO / "docs" / "results" / "suite.md")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="TrainConfig fields for every training (JSON values), e.g. adversary_weight=0.1")
    parser.add_argument("--device", default="auto", help="training device (auto: CUDA when present)")
    parser.add_argument("--jobs", type=int, default=1, help="cells at once (processes)")
    args = parser.parse_args(argv)
    settings = {}
    for item in args.set:
        field, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected FIELD=VALUE")
        try:
            settings[field] = json.loads(value)
        except json.JSONDecodeError:
            settings[field] = value
    size = args.size or ("quick" if args.quick else "default")
    sizes = SIZES[size]
    out = args.out / size
    chosen = [c for c in cells() if args.cells is None or c["name"] in args.cells]
    if args.cells and len(chosen) != len(args.cells):
        known = ", ".join(c["name"] for c in cells())
        parser.error(f"unknown cell in {args.cells}; known: {known}")
    results = []
    args.report.parent.mkdir(parents=True, exist_ok=True)
    run = (sizes, args.seeds, out, args.threads, args.queries, settings, args.device)
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(run_cell, chosen, *[[a] * len(chosen) for a in run]))
    else:
        for cell in chosen:
            t0 = time.perf_counter()
            results.append(run_cell(cell, *run))
            write_text_atomic(args.report, render(results, sizes, args.threads, settings, args.device))
            print(f"{cell['name']}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    text = render(results, sizes, args.threads, settings, args.device)
    write_text_atomic(args.report, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
