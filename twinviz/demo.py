"""The bundled demo: a small trained model in ``data/demo/`` and everything it needs.

What is committed (``data/demo/``): ``recipe.json`` — how the demo is made (dataset sizes,
seeds, training config) and the metrics it reached when it was made — and ``model/``, the
trained demo model (safetensors + JSON config).

What is regenerated on first use and cached (``data/cache/``, git-ignored): the demo
dataset (deterministic: the synthesizer with the recipe's seed), its latents with PCA and
UMAP projections, and the model's Table-1 report on it. Cache files carry a key made of the
recipe, the model's weights and the synthesizer's versions, so a changed synthesizer or
model never serves stale files.

The small derived files (latents with their maps, 1.3 MB, and ``report.json``) are also committed
in ``data/demo/derived/`` under the same keyed names: a first start copies them into the cache
instead of encoding, projecting (UMAP) and evaluating (~45 s on 2 cores), and only synthesises
the spectra (114 MB, seconds). Files there whose key no longer matches are ignored.

``twinviz demo --rebuild`` re-creates everything from scratch: training data, training, the
model in ``data/demo/model``, latents, projections, report and the recorded metrics.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from twinviz.atomic import write_json_atomic
from twinviz import files as runfiles

__all__ = ["DemoPaths", "demo_ready", "demo_root", "ensure_demo", "load_recipe", "rebuild_demo"]

log = logging.getLogger(__name__)
DERIVED_DIR = "derived"  # data/demo/derived: the committed latents and report.json

#: How the demo is made when no recipe exists yet (``twinviz demo --rebuild`` writes one).
DEFAULT_RECIPE = {
    "dataset": {"pairs": 2000, "group_size": 2, "seed": 2019, "snr": None, "chemistry": "independent",
                "grid": "apogee-aspcap-dr12"},
    "training_data": {"pairs": 10000, "seed": 7, "snr": None},
    "validation_data": {"pairs": 1000, "seed": 8, "snr": None},
    "train": {"epochs": 60, "seed": 0},  # other hyperparameters: TrainConfig's defaults
    "umap": {"n_neighbors": 15, "min_dist": 0.1, "seed": 42},  # see twinviz.latents.projection.UMAP_DEFAULTS
}


def demo_root() -> Path:
    """The folder holding ``demo/`` and ``cache/``: ``$TWINVIZ_DATA_DIR`` or the repository's ``data/``."""
    env = os.environ.get("TWINVIZ_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo's parts are on disk."""

    model: Path
    data: Path
    latents: Path
    report: Path
    recipe: Path


def load_recipe(root: Path | None = None) -> dict:
    """The committed recipe (``data/demo/recipe.json``), or the default one."""
    path = (root or demo_root()) / "demo" / "recipe.json"
    if path.exists():
        return json.loads(path.read_text())
    return json.loads(json.dumps(DEFAULT_RECIPE))


_DIGESTS: dict[tuple, str] = {}


def _file_digest(path: Path) -> str:
    """SHA-1 of a file, remembered per (path, size, modification time): a server checks the
    demo's cache for every page it builds, and re-hashing the weights each time cost ~10 ms."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha1()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _model_key(model_dir: Path) -> str:
    """Names the cached latents and report: the weights and every sidecar of the bundle (the report
    ranks twins in its metric; the OOD flags use its validation stats)."""
    key = _file_digest(model_dir / runfiles.MODEL_WEIGHTS)[:10]
    sidecars = [_file_digest(model_dir / name) for name in (runfiles.MODEL_CONFIG, runfiles.TWIN_METRIC_WEIGHTS,
                                                            runfiles.TWIN_METRIC_CONFIG, runfiles.MODEL_VALIDATION_STATS,
                                                            runfiles.MODEL_CALIBRATION)
                if (model_dir / name).exists()]
    return key + "-" + hashlib.sha1("".join(sidecars).encode()).hexdigest()[:6]


def _dataset_key(recipe: dict) -> str:
    from twinviz.spectra import synth

    spec = {"dataset": recipe["dataset"], "linelist": synth.LINELIST_VERSION,
            "generator": getattr(synth, "GENERATOR_VERSION", "")}
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def _simulate_to(path: Path, spec: dict, grid: str, progress: bool) -> Path:
    from twinviz.spectra.dataset import save_spectra
    from twinviz.spectra.simulation import simulate

    ds = simulate(spec["pairs"], group_size=spec.get("group_size", 2), seed=spec["seed"],
                  snr=spec.get("snr"), chemistry=spec.get("chemistry", "independent"), grid=grid,
                  progress=progress)
    return save_spectra(ds, path)


def _paths(root: Path, recipe: dict) -> tuple[Path, Path, Path, Path]:
    """(model dir, data, latents, report.json) of the demo under ``root``'s cache."""
    model_dir = root / "demo" / runfiles.MODEL_DIR
    cache = root / "cache"
    stem = f"demo-{_dataset_key(recipe)}-{_model_key(model_dir)}"
    return (model_dir, cache / f"demo-{_dataset_key(recipe)}.nc", cache / f"{stem}-latents.nc",
            cache / f"{stem}-report" / "report.json")


def demo_ready(root: Path | None = None) -> bool:
    """True when the demo's cache is complete (a start then only reads files)."""
    root = Path(root or demo_root())
    recipe = load_recipe(root)
    model_dir = root / "demo" / runfiles.MODEL_DIR
    if not (model_dir / runfiles.MODEL_CONFIG).exists():
        return True  # nothing to build: ensure_demo says what is missing
    return all(p.exists() for p in _paths(root, recipe)[1:])


def ensure_demo(root: Path | None = None, *, progress: bool = False, on_step=None) -> DemoPaths:
    """Make sure the demo's dataset, latents and report exist (building what is missing)
    and return their paths. The first call synthesises the spectra (seconds) and takes the
    latents and report from ``data/demo/derived`` when they match the model and recipe, else
    computes them (about a minute); later calls only check the cache. Each step is logged
    (``twinviz.demo``, INFO) and passed to ``on_step(text)`` when given."""
    def step(text: str) -> None:
        log.info("demo: %s", text)
        if on_step is not None:
            on_step(text)

    root = Path(root or demo_root())
    recipe = load_recipe(root)
    model_dir = root / "demo" / runfiles.MODEL_DIR
    if not (model_dir / runfiles.MODEL_CONFIG).exists():
        raise FileNotFoundError(
            f"{model_dir}: the demo model is missing. Fix: run `twinviz demo --rebuild` "
            "(trains it, about 10 minutes on 2 CPU cores) or restore data/demo from git")
    (root / "cache").mkdir(parents=True, exist_ok=True)
    grid = recipe["dataset"].get("grid", "apogee-aspcap-dr12")
    _, data, latents, report = _paths(root, recipe)
    if not data.exists():
        step(f"synthesising the demo's {2 * recipe['dataset']['pairs']:,} spectra (first start only) …")
        _simulate_to(data, recipe["dataset"], grid, progress)
    if not latents.exists() or not report.exists():
        derived = root / "demo" / DERIVED_DIR
        if (derived / latents.name).exists() and (derived / report.parent.name / report.name).exists():
            step("copying the committed latents, maps and report (data/demo/derived) …")
            report.parent.mkdir(parents=True, exist_ok=True)
            for src, dst in ((derived / latents.name, latents), (derived / report.parent.name / report.name, report)):
                tmp = dst.with_name(dst.name + ".tmp")
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
        else:
            step("encoding the spectra, fitting the PCA and UMAP maps and the Table-1 report "
                 "(about a minute, first start only) …")
            _build_latents_and_report(model_dir, data, latents, report.parent, recipe)
    step("ready")
    return DemoPaths(model_dir, data, latents, report, root / "demo" / "recipe.json")


def save_derived(paths: DemoPaths) -> None:
    """Put the demo's latents and report.json in ``data/demo/derived`` (committed), replacing the
    files of an older model or recipe."""
    derived = paths.recipe.parent / DERIVED_DIR
    shutil.rmtree(derived, ignore_errors=True)
    (derived / paths.report.parent.name).mkdir(parents=True)
    shutil.copyfile(paths.latents, derived / paths.latents.name)
    shutil.copyfile(paths.report, derived / paths.report.parent.name / paths.report.name)


def _build_latents_and_report(model_dir: Path, data: Path, latents: Path, report_dir: Path,
                              recipe: dict) -> None:
    from twinviz.bundle import ModelBundle
    from twinviz.evaluation import evaluate, write_report
    from twinviz.latents import save_latents
    from twinviz.latents.projection import add_projections
    from twinviz.spectra.dataset import load_spectra

    bundle = ModelBundle.open(model_dir)
    ds = load_spectra(data)
    lat = bundle.embed(ds)
    umap_opts = recipe.get("umap", {})
    lat = add_projections(lat, ("pca", "umap"), **umap_opts)
    save_latents(lat, latents)
    # the report is written last: its presence marks a complete cache entry
    write_report(evaluate(bundle, ds), report_dir)


def _relative_metric_sources(model_dir: Path) -> None:
    """The twin metric's and the provenance's records of the files they were fitted and chosen on,
    as bare file names (the build folder is temporary)."""
    from twinviz.twins.metric import METRIC_CONFIG

    path = model_dir / METRIC_CONFIG
    if not path.exists():
        return
    info = json.loads(path.read_text())
    for key in ("fitted_on", "chosen_on"):
        if isinstance(info.get(key), dict):
            info[key]["path"] = Path(info[key]["path"]).name
        elif info.get(key):
            info[key] = Path(info[key]).name
    write_json_atomic(path, info)
    prov = model_dir / runfiles.MODEL_PROVENANCE
    if prov.exists():
        doc = json.loads(prov.read_text())
        for key in ("trained_on", "epoch_chosen_on"):
            if isinstance(doc.get(key), dict):
                doc[key]["path"] = Path(doc[key]["path"]).name
        write_json_atomic(prov, doc)


def rebuild_demo(root: Path | None = None, *, progress: bool = True, epochs: int | None = None) -> dict:
    """Re-create the whole demo from scratch; returns the metrics recorded in the recipe."""
    from twinviz.training import TrainConfig, train

    root = Path(root or demo_root())
    recipe = load_recipe(root)
    if epochs is not None:
        recipe["train"]["epochs"] = epochs
    grid = recipe["dataset"].get("grid", "apogee-aspcap-dr12")
    work = root / "cache" / "demo-build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    train_path = _simulate_to(work / "train.nc", recipe["training_data"], grid, progress)
    val_path = _simulate_to(work / "val.nc", recipe["validation_data"], grid, progress)
    config = TrainConfig(data=str(train_path), val=str(val_path), out=str(work / "run"),
                         progress=progress, **recipe["train"])
    run_dir = Path(train(config))

    demo_dir = root / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    new_model = demo_dir / ".model.new"
    shutil.rmtree(new_model, ignore_errors=True)
    shutil.copytree(run_dir / runfiles.MODEL_DIR, new_model)
    # the full training config (paths made relative), so the demo can be re-made exactly
    train_config = json.loads((run_dir / runfiles.CONFIG).read_text())
    for key in ("data", "val", "out"):
        train_config[key] = Path(train_config[key]).name if train_config.get(key) else None
    write_json_atomic(new_model / "train_config.json", train_config)
    _relative_metric_sources(new_model)
    old = demo_dir / ".model.old"
    if (demo_dir / runfiles.MODEL_DIR).exists():
        os.replace(demo_dir / runfiles.MODEL_DIR, old)
    os.replace(new_model, demo_dir / runfiles.MODEL_DIR)
    shutil.rmtree(old, ignore_errors=True)

    paths = ensure_demo(root, progress=progress)
    save_derived(paths)
    report = json.loads(paths.report.read_text())
    methods = {m["key"]: m for m in report["methods"]}
    keys = ("mse", "swapped_mse", "rank1", "within_0p1", "within_1")
    recipe["metrics"] = {k: methods["fader"][k] for k in keys} | {"n_stars": report["n_stars"]}
    recipe.pop("metrics_raw_z", None)
    recipe.pop("twin_metric", None)  # a note for a metric fitted after training; training fits its own
    if "fader_raw_z" in methods:  # the same model ranking on raw z (it has a twin metric)
        recipe["metrics_raw_z"] = {k: methods["fader_raw_z"][k] for k in keys} | {"n_stars": report["n_stars"]}
    write_json_atomic(demo_dir / "recipe.json", recipe)
    shutil.rmtree(work, ignore_errors=True)
    return recipe["metrics"]
