"""The science suite: Table 1 across synthesizer regimes, several training seeds per cell.

  python benchmarks/bench_science.py --quick            # small sizes: a smoke run (~1 h on 2 cores)
  python benchmarks/bench_science.py                    # the suite's default sizes (many hours)
  python benchmarks/bench_science.py --cells giants-lowd-noiseless --seeds 0 1 2

Matrix: population {giants, dwarfs} × chemistry {independent, low-d} × noise {noiseless,
SNR 50 with the ``realistic`` nuisance preset}. Per cell, one training set, one validation set
(best epoch, the polynomial-PCA baseline's degree and components) and one held-out test set are
simulated with fixed seeds; for every training seed a fader network (TrainConfig defaults, no twin
term), the λ = 0 conditional autoencoder (the same, adversary weight 0; ``--lambda0-seeds`` limits
it to some seeds) and the *many* network (the defaults with the twin term, μ = ``TWIN_WEIGHT``) are
trained with the same budget, and each is scored on the test set beside the pixel baselines (polynomial residuals, polynomial
residuals on principal components, raw flux), the twin-supervised baseline (the same residuals
in a twin metric learned from the training twins: the fair peer of a model ranked in its twin
metric) and the oracle. Nothing is tuned on the test split.

Three supervision regimes, each beside its fair peer (benchmarks/regimes.py, docs/model.md
"Supervision regimes"): none (raw z; baselines that never see a twin), few (a twin metric from
25 open-cluster-like groups of ≤ 200 stars in all, ``few.nc``; RSCA-like peer), many (the training
twins: the network trained with the twin term, ranked in its twin metric). Every row also has its doppelganger rate, and each cell its information limit (the
Cramér–Rao bound of the test spectra, twinviz/evaluation/information.py) and every row's share of it. A report scored with an older twin
metric (``METRIC_VERSION``) is refitted and scored again; the trained networks are kept.

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
from benchmarks import regimes  # noqa: E402

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
# The twin metric's version: 2 added the Teff/logg interaction features. A run whose metric was
# fitted by an older version is refitted (the network is kept) and its seed scored again.
METRIC_VERSION = 2
# The report's version: 2 added the doppelganger rate; an older report is scored again (no retraining).
REPORT_VERSION = 2
METRICS = ("rank1", "within_0p1", "within_1", "doppelganger_rate")
UNSUPERVISED = ("polynomial", "polynomial_pca", "raw_flux")  # baselines that never see a twin
SUPERVISED = ("polynomial_pca_metric",)  # baselines given the training twins, as the twin metric is


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


def trained(data: dict, out: Path, seed: int, epochs: int, threads: int, overrides: dict | None = None,
            settings: dict | None = None, device: str = "auto") -> tuple[Path, float]:
    """Train (or reuse) one network: TrainConfig defaults, then ``overrides`` (the training's own
    fields, :data:`TRAININGS`), then the suite's ``--set`` settings. Returns (model dir, wall s)."""
    from twinviz.atomic import write_text_atomic
    from twinviz.training import TrainConfig, train

    timing = out / "wall_seconds.json"
    if (out / "model" / "model.safetensors").exists() and timing.exists():
        _twin_metric_of(out, data, settings, device)
        return out / "model", json.loads(timing.read_text())["seconds"]
    kw = {"epochs": epochs, **(overrides or {}), **(settings or {})}  # --set epochs=N overrides the size's
    t0 = time.perf_counter()
    train(TrainConfig(data=str(data["train"]), val=str(data["val"]), out=str(out), seed=seed,
                      num_threads=threads, progress=False, device=device, **kw), overwrite=True)
    seconds = time.perf_counter() - t0
    if (settings or {}).get("twin_metric") != "off":  # training fitted today's twin metric
        write_text_atomic(out / "twin_metric_fit.json", json.dumps({"status": "training", "version": METRIC_VERSION}))
    write_text_atomic(timing, json.dumps({"seconds": seconds}))
    return out / "model", seconds


def scored(report_path: Path) -> bool:
    """A seed's report exists and was ranked in today's twin metric (else it is scored again)."""
    if not report_path.exists():
        return False
    settings = json.loads(report_path.read_text())["settings"]
    return settings.get("metric_version") == METRIC_VERSION and settings.get("report_version") == REPORT_VERSION


def prepare_cell(cell: dict, sizes: dict, out: Path) -> tuple[dict, dict]:
    """The cell's three datasets and the polynomial-PCA choice (made on validation)."""
    from twinviz.atomic import write_text_atomic
    from twinviz.evaluation.baselines import choose_polynomial_pca
    from twinviz.spectra.dataset import load_spectra

    root = out / cell["name"]
    root.mkdir(parents=True, exist_ok=True)
    data = {split: dataset(cell, split, sizes[split], root) for split in ("train", "val", "test")}
    data["few"] = regimes.few_dataset(cell, root, NOISES)
    choice_path = root / "poly_pca_choice.json"
    if not choice_path.exists():
        choice = choose_polynomial_pca(load_spectra(data["val"]))
        choice["chosen_on"] = "validation split"
        write_text_atomic(choice_path, json.dumps(choice, indent=2))
    return data, json.loads(choice_path.read_text())


# μ of the *many* network's twin term: the value of the front-end study (benchmarks/study_frontend.py,
# quick size, validation split), where it raised the many regime's rank 1 in every cell it ran.
TWIN_WEIGHT = 0.1
# Trainings per seed: name → TrainConfig fields (``--set`` settings are applied on top).
TRAININGS = {"fader": {"twin_weight": 0.0}, "lambda0": {"adversary_weight": 0.0, "twin_weight": 0.0},
             "fader_twin": {"twin_weight": TWIN_WEIGHT}}
# The two trainings ``score_seed`` needs (the *many* network is scored by regimes.score_many_twin).
METHODS = ("fader", "lambda0")


def seed_trainings(seed: int, lambda0_seeds, skip=()) -> list[str]:
    """The trainings of one seed: all three, less λ = 0 where ``lambda0_seeds`` leaves it out and
    less those named in ``skip`` (``--skip``: e.g. the *many* network when only *none*/*few* are wanted)."""
    return [name for name in TRAININGS if name not in skip
            and (name != "lambda0" or lambda0_seeds is None or seed in lambda0_seeds)]


def score_seed(cell: dict, data: dict, poly_pca: dict, seed: int, with_baselines: bool, trainings: dict,
               queries: int, settings: dict | None, device: str) -> Path:
    """Score one seed's fader (and λ = 0, where trained) models on the test split (baselines once per cell)."""
    from twinviz.evaluation import evaluate, write_report
    from twinviz.bundle import ModelBundle
    from twinviz.spectra.dataset import load_spectra

    report_path = data["test"].parent / f"seed{seed}" / "report.json"
    if scored(report_path):
        return report_path
    fader_dir, _ = trainings["fader"]
    l0_dir = trainings["lambda0"][0] if "lambda0" in trainings else None
    baselines = ("polynomial", "polynomial_pca", "raw_flux", "oracle") if with_baselines else ()
    supervised = None
    if with_baselines:  # the twin-supervised peer of the fader network's twin metric
        from twinviz.evaluation.supervised_baseline import fit_polynomial_pca_metric

        supervised = fit_polynomial_pca_metric(load_spectra(data["train"]), load_spectra(data["val"]))
    report = evaluate(ModelBundle.open(fader_dir), load_spectra(data["test"]),
                      baseline_model=None if l0_dir is None else ModelBundle.open(l0_dir), baselines=baselines,
                      poly_pca=poly_pca, supervised=supervised, pixel_queries=queries)
    report.settings.update(train_seconds={name: trainings[name][1] for name in METHODS if name in trainings}, seed=seed, metric_version=METRIC_VERSION,
                           report_version=REPORT_VERSION,
                           train_settings=settings or {}, train_device=device, machine=machine())
    write_report(report, report_path.parent)
    return report_path


def machine() -> str:
    """What the trainings ran on, for the report (the train-minutes column depends on it)."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} logical CPUs"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name(0)}"
    except Exception:
        pass
    return text


def score_regimes(cell: dict, data: dict, seeds, out: Path, queries: int) -> None:
    """The *few* rows (each seed's network, and the RSCA-like peer once), the *many* network's rows
    and the limit row, each cached in its file (benchmarks/regimes.py)."""
    root = out / cell["name"]
    for seed in seeds:
        model_dir = root / f"seed{seed}" / "fader" / "model"
        if (model_dir / "model.safetensors").exists():
            regimes.score_few_fader(model_dir, data, root / f"seed{seed}" / "few.json")
        twin_run = root / f"seed{seed}" / "fader_twin"
        if (twin_run / "model" / "model.safetensors").exists() and (twin_run / "wall_seconds.json").exists():
            regimes.score_many_twin(twin_run, data, root / f"seed{seed}" / "many.json", queries)
    regimes.score_few_peer(data, root / "few_peer.json")
    regimes.score_limit(data, root / "limit.json", queries)


def collect(cell: dict, sizes: dict, seeds, out: Path) -> dict:
    results = {"cell": cell, "sizes": sizes, "seeds": {}, "few": {}, "many": {}}
    root = out / cell["name"]
    for seed in seeds:
        report_path = root / f"seed{seed}" / "report.json"
        if report_path.exists():
            results["seeds"][seed] = json.loads(report_path.read_text())
        for regime in ("few", "many"):
            if (root / f"seed{seed}" / f"{regime}.json").exists():
                results[regime][seed] = json.loads((root / f"seed{seed}" / f"{regime}.json").read_text())
    for name in ("few_peer", "limit"):
        path = root / f"{name}.json"
        results[name] = json.loads(path.read_text()) if path.exists() else None
    return results


def _twin_metric_of(out: Path, data: dict, settings: dict | None, device: str) -> None:
    """Runs trained before training learned the twin metric get it now, as training would have
    (fitted on the training split, its size chosen on validation); recorded so it happens once."""
    from twinviz.atomic import write_text_atomic
    from twinviz.bundle.fit import fit_model_twin_metric

    marker = out / "twin_metric_fit.json"
    if (settings or {}).get("twin_metric") == "off":
        return
    if marker.exists() and json.loads(marker.read_text()).get("version") == METRIC_VERSION:
        return
    outcome = fit_model_twin_metric(out / "model", str(data["train"]), str(data["val"]),
                                    device="cuda" if device == "cuda" else "cpu")
    write_text_atomic(marker, json.dumps({**outcome, "version": METRIC_VERSION}))


def run_cell(cell: dict, sizes: dict, seeds, out: Path, threads: int, queries: int, settings: dict | None = None,
             device: str = "auto", lambda0_seeds=None, skip=()) -> dict:
    data, poly_pca = prepare_cell(cell, sizes, out)
    for seed in seeds:
        trainings = {name: trained(data, out / cell["name"] / f"seed{seed}" / name, seed, sizes["epochs"],
                                   threads, TRAININGS[name], settings=settings, device=device)
                     for name in seed_trainings(seed, lambda0_seeds, skip)}
        if not scored(out / cell["name"] / f"seed{seed}" / "report.json"):
            score_seed(cell, data, poly_pca, seed, seed == seeds[0], trainings, queries, settings, device)
    score_regimes(cell, data, seeds, out, queries)
    return collect(cell, sizes, seeds, out)


def run_parallel(chosen: list[dict], sizes: dict, seeds, out: Path, threads: int, queries: int,
                 settings: dict | None, device: str, lambda0_seeds=None, skip=(), jobs: int = 2) -> list[dict]:
    """Every training of every cell and seed as its own task in ``jobs`` processes (lower seeds
    first), each seed's report scored as soon as its fader (and λ = 0) trainings are done: the
    layout for a machine with many cores and one GPU, where the cells' trainings run side by side."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        prepared = dict(zip([c["name"] for c in chosen],
                            pool.map(prepare_cell, chosen, [sizes] * len(chosen), [out] * len(chosen))))
        pending, done_trainings, needed = {}, {}, {}
        for seed in seeds:
            for cell in chosen:
                data = prepared[cell["name"]][0]
                names = seed_trainings(seed, lambda0_seeds, skip)
                needed[(cell["name"], seed)] = (set() if scored(out / cell["name"] / f"seed{seed}" / "report.json")
                                                else {n for n in names if n in METHODS})
                for name in names:
                    future = pool.submit(trained, data, out / cell["name"] / f"seed{seed}" / name, seed,
                                         sizes["epochs"], threads, TRAININGS[name], settings, device)
                    pending[future] = ("train", cell, seed, name)
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                kind, cell, seed, name = pending.pop(future)
                result = future.result()
                if kind == "score":
                    print(f"{cell['name']} seed {seed}: scored", flush=True)
                    continue
                print(f"{cell['name']} seed {seed} {name}: trained in {result[1]:.0f} s", flush=True)
                trainings = done_trainings.setdefault((cell["name"], seed), {})
                trainings[name] = result
                if name in needed[(cell["name"], seed)] and needed[(cell["name"], seed)] <= set(trainings):
                    data, poly_pca = prepared[cell["name"]]
                    future = pool.submit(score_seed, cell, data, poly_pca, seed, seed == seeds[0], trainings,
                                         queries, settings, device)
                    pending[future] = ("score", cell, seed, None)
    for cell in chosen:
        score_regimes(cell, prepared[cell["name"]][0], seeds, out, queries)
    return [collect(cell, sizes, seeds, out) for cell in chosen]


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

    def add(key, m):
        for k in METRICS:
            per_method.setdefault(key, {}).setdefault(k, []).append(m.get(k))

    for report in result["seeds"].values():
        methods = {m["key"]: m for m in report["methods"]}
        # A seed whose model kept raw z (validation chose no twin metric) ranked on raw z already:
        # that row is its raw-z row too, so the raw-z rows average every seed.
        for model in ("fader", "lambda0"):
            if model in methods and f"{model}_raw_z" not in methods:
                methods[f"{model}_raw_z"] = methods[model]
        for key, m in methods.items():
            add(key, m)
        for key, s in report["settings"].get("train_seconds", {}).items():
            seconds.setdefault(key, []).append(s)
    for row in result.get("few", {}).values():
        add("fader_few", row)
    for row in result.get("many", {}).values():
        add("fader_twin", row["metric"])
        add("fader_twin_raw_z", row["raw_z"])
        seconds.setdefault("fader_twin", []).append(row["train_seconds"])
    if result.get("few_peer"):
        add("polynomial_pca_few", result["few_peer"])
    for row in (result.get("limit") or {}).get("draws", []):
        add("limit", row)
    summary = {key: {k: _stats(v) for k, v in metrics.items()} for key, metrics in per_method.items()}
    return {"summary": summary, "seconds": {k: _stats(v) for k, v in seconds.items()}, "n_seeds": len(result["seeds"]),
            "n": {key: len(metrics["rank1"]) for key, metrics in per_method.items()}}


# Rows of each cell by supervision regime (benchmarks/regimes.py), the regime's fader row first.
REGIME_ROWS = (
    ("limit", ("limit",)),
    ("none", ("fader_raw_z", "lambda0_raw_z", "polynomial_pca", "polynomial", "raw_flux")),
    ("few", ("fader_few", "polynomial_pca_few")),
    ("many", ("fader_twin", "fader_twin_raw_z", "fader", "lambda0", "polynomial_pca_metric")),
    ("labels", ("oracle",)),
)
# Issue 25's targets: (fader rows, peers, factor) per regime — the first fader row present is the
# regime's (many: the twin-term network; suites run before it existed: the none network's metric);
# the none target binds only where the limit row is ≥ 20 % rank 1.
TARGETS = {"none": (("fader_raw_z",), UNSUPERVISED, 2.0), "few": (("fader_few",), ("polynomial_pca_few",), 1.5),
           "many": (("fader_twin", "fader"), SUPERVISED, 0.97)}
ROW_NAMES = {"fader_raw_z": "fader, raw z", "lambda0_raw_z": "λ = 0, raw z", "fader_few": "fader z, few-twin metric",
             "polynomial_pca_few": "polynomial_pca, few-twin metric (RSCA-like)", "fader": "fader, twin metric",
             "lambda0": "λ = 0, twin metric", "limit": "limit (Cramér–Rao)",
             "fader_twin": f"fader + twin term (μ {TWIN_WEIGHT}), twin metric",
             "fader_twin_raw_z": "fader + twin term, raw z"}


def target_row(summary: dict, regime: str) -> str | None:
    """The regime's fader row: the first of its TARGETS rows that the summary has."""
    return next((k for k in TARGETS[regime][0] if summary.get(k)), None)


def target_text(summary: dict, regime: str) -> str:
    """"2.3× polynomial_pca (≥ 2×: met)" for the regime's fader row against its strongest peer."""
    key, (_, peers, factor) = target_row(summary, regime), TARGETS[regime]
    present = [k for k in peers if summary.get(k) and summary[k]["rank1"][0] is not None]
    if not summary.get(key) or not present:
        return ""
    peer = max(present, key=lambda k: summary[k]["rank1"][0])
    value, base = summary[key]["rank1"][0], summary[peer]["rank1"][0]
    limit = (summary.get("limit") or {}).get("rank1", (None,))[0]
    ratio = f"{value / base:.2f}×" if base else "∞"
    if limit is not None and regime == "none" and limit < 0.2:
        verdict = f"exempt: limit {100 * limit:.1f} % < 20 %"
    elif limit is not None and base and limit < factor * base:
        verdict = f"exempt: limit {100 * limit:.1f} % < {factor}× the peer"
    else:
        verdict = "met" if base and value >= factor * base else "not met"
    return f"{ratio} {peer} (≥ {factor}×: {verdict})"


def render(results: list[dict], sizes: dict, threads: int, settings: dict | None = None,
           device: str = "auto") -> str:
    def pct(stat, digits=1):
        mean, sd = stat if stat else (None, None)
        if mean is None:
            return ""
        return f"{100 * mean:.{digits}f} ± {100 * sd:.{digits}f}" if sd else f"{100 * mean:.{digits}f}"

    lines = ["# The science suite", "",
             "Made by `benchmarks/bench_science.py` (this file is written by it; do not edit by hand).", "",
             f"Sizes: {sizes['train']} training pairs, {sizes['val']} validation pairs, {sizes['test']} held-out "
             f"test pairs (N = {2 * sizes['test']} stars, the numbers below); "
             f"{(settings or {}).get('epochs', sizes['epochs'])} epochs per training, "
             f"{threads} CPU thread(s), device {device}, "
             + (f"TrainConfig defaults except {json.dumps(settings)}. " if settings else "TrainConfig defaults otherwise. ")
             + "Rows by supervision regime (docs/model.md, \"Supervision regimes\"): **none** — no twin anywhere: "
             "raw z of a network trained without a twin term and kept at its latest epoch, beside the baselines "
             "that never see a twin; **few** — the same network's z ranked in a twin metric learned from "
             f"{regimes.FEW_GROUPS} open-cluster-like groups of at most {regimes.FEW_MAX_STARS} stars in all (the "
             "metric is the only place the few twins enter), beside polynomial-PCA residuals in a metric learned "
             "by the same procedure from the same few (RSCA-like); **many** — the training twins: a network trained "
             f"with the twin term (μ = {TWIN_WEIGHT}) ranked in its twin metric (its raw z and the *none* network in "
             "the same kind of metric below it), beside polynomial-PCA residuals in a metric from the same twins. "
             "**limit**: the "
             "Cramér–Rao information limit of the test spectra (mean ± sd over 3 draws; noiseless: 100 %). "
             "Network rows: mean ± sd over training seeds; deterministic baselines: one value. Doppelganger "
             "rate: the fraction of random non-twin pairs at a distance ≤ the median twin-pair distance (lower "
             "is better). ÷ limit: rank 1 over the limit row's. Targets (issue 25): none ≥ 2× the strongest "
             "unsupervised baseline where the limit is ≥ 20 %; few ≥ 1.5× the RSCA-like peer; many ≥ 0.97× the "
             "pixel peer; a target the limit makes impossible is exempt.", ""]
    caveat = regime_caveat(settings)
    if caveat:
        lines += [caveat, ""]
    lines += ["| cell | regime | method | n | rank 1 % | ≤ 0.1 % | ≤ 1 % | doppelganger % | ÷ limit | train min/run | target |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    summaries = [summarize(result) for result in results]
    for result, s in zip(results, summaries):
        name, summary = result["cell"]["name"], s["summary"]
        limit = (summary.get("limit") or {}).get("rank1", (None,))[0]
        for regime, keys in REGIME_ROWS:
            for key in keys:
                if key not in summary:
                    continue
                m = summary[key]
                minutes = s["seconds"].get(key.replace("_raw_z", "").replace("_few", ""))
                mins = f"{minutes[0] / 60:.1f}" if minutes and minutes[0] is not None and key in (
                    "fader", "lambda0", "fader_raw_z", "lambda0_raw_z", "fader_few", "fader_twin") else ""
                share = f"{m['rank1'][0] / limit:.2f}" if limit and m["rank1"][0] is not None and key != "limit" else ""
                target = target_text(summary, regime) if regime in TARGETS and key == target_row(summary, regime) else ""
                lines.append(f"| {name} | {regime} | {ROW_NAMES.get(key, key)} | {s['n'][key]} | {pct(m['rank1'])} | "
                             f"{pct(m['within_0p1'])} | {pct(m['within_1'])} | {pct(m['doppelganger_rate'], 2)} | "
                             f"{share} | {mins} | {target} |")
    return "\n".join(lines + adversary_lines(results, summaries) + machine_lines(results)) + "\n"


def regime_caveat(settings: dict | None) -> str:
    """Where ``--set`` breaks a regime's premise, say so above the table."""
    settings = settings or {}
    notes = []
    if settings.get("twin_weight"):
        notes.append("the loss had a twin term (twin_weight), so the **none** and **few** networks have seen "
                     "the training twins")
    if settings.get("twin_metric") == "off":
        notes.append("twin_metric off: the epoch was chosen by validation twin rank 1, so the **none** rows "
                     "are not twin-free; the **many** rows rank on raw z")
    return ("Caveat: " + "; ".join(notes) + ".") if notes else ""


def adversary_lines(results: list[dict], summaries: list[dict]) -> list[str]:
    """What the adversary adds: the fader network's rank 1 over the λ = 0 network's, per cell, in
    the twin metric and on raw z, with the geometric mean over the cells (the defaults question)."""
    rows, logs = [], {"metric": [], "raw z": []}
    for result, summarized in zip(results, summaries):
        summary = summarized["summary"]
        cells = []
        for label, fader, plain in (("metric", "fader", "lambda0"), ("raw z", "fader_raw_z", "lambda0_raw_z")):
            a, b = (summary.get(k, {}).get("rank1", (None, None))[0] for k in (fader, plain))
            if a and b:
                logs[label].append(math.log(a / b))
                cells.append(f"{100 * a:.1f} / {100 * b:.1f} = {a / b:.2f}×")
            else:
                cells.append("")
        if any(cells):
            rows.append(f"| {result['cell']['name']} | {cells[0]} | {cells[1]} |")
    if not rows:
        return []
    means = [f"{math.exp(sum(v) / len(v)):.2f}× over {len(v)} cell{'s' if len(v) > 1 else ''}" if v else ""
             for v in logs.values()]
    return ["", "What the adversary adds (rank 1 %, fader ÷ λ = 0; above 1×: the adversary helps):", "",
            "| cell | in the twin metric | on raw z |", "|---|---|---|", *rows,
            f"| geometric mean | {means[0]} | {means[1]} |"]


def machine_lines(results: list[dict]) -> list[str]:
    """Which machine trained which cell (reports written before this was recorded: unknown)."""
    machines: dict[str, list[str]] = {}
    for result in results:
        found = {report["settings"].get("machine", "not recorded") for report in result["seeds"].values()}
        for name in sorted(found):
            machines.setdefault(name, []).append(result["cell"]["name"])
    if not machines:
        return []
    return ["", "Machines (the train-minutes column depends on them): "
            + "; ".join(f"{m} — {', '.join(cells)}" for m, cells in machines.items()) + "."]


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
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes: every training (cell × seed × fader/λ=0/twin term) is its own task")
    parser.add_argument("--lambda0-seeds", nargs="*", type=int, default=None,
                        help="seeds whose λ = 0 network is trained (default: every seed)")
    parser.add_argument("--skip", nargs="*", default=[], choices=[n for n in TRAININGS if n != "fader"],
                        help="trainings to leave out (fader_twin: the many row falls back to the none network's metric)")
    parser.add_argument("--limit-only", action="store_true",
                        help="only each cell's information limit (simulates the test split; no training)")
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
    run = (sizes, args.seeds, out, args.threads, args.queries, settings, args.device, args.lambda0_seeds,
           args.skip)
    if args.limit_only:
        for cell in chosen:
            t0 = time.perf_counter()
            test = dataset(cell, "test", sizes["test"], out / cell["name"])
            row = regimes.score_limit({"test": test}, out / cell["name"] / "limit.json", args.queries)
            rank1 = [d["rank1"] for d in row["draws"]]
            rates = ", ".join(f"{100 * d['doppelganger_rate']:.2f}" for d in row["draws"])
            draws = ", ".join(f"{100 * r:.1f}" for r in rank1)
            print(f"{cell['name']}: limit rank 1 {100 * sum(rank1) / len(rank1):.1f} % ({draws}), doppelganger "
                  f"{rates} %, {time.perf_counter() - t0:.0f} s", flush=True)
        return 0
    if args.jobs > 1:
        results = run_parallel(chosen, *run, jobs=args.jobs)
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
