"""Training throughput (spectra/s) of the default fader network on the APOGEE ASPCAP grid.

Times the real training step (``Trainer.train_step``: one adversary update + one autoencoder
update per batch) on CPU, and on CUDA when a GPU is present, after a warm-up.

    python benchmarks/bench_train.py [--batch-size 256] [--steps 30] [--threads N] [--device cpu|cuda|all] [--pixels]

By default the basis is frozen, so the trainer works on precomputed basis coefficients
("coefficients"); --pixels adds the same network with a trainable basis ("pixels").

Data: 2 048 random absorption-line spectra on the 7 214-pixel grid (throughput does not depend
on what the spectra look like, only on their size).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twinviz.spectra.dataset import make_spectra, save_spectra  # noqa: E402
from twinviz.spectra.grid import get_grid  # noqa: E402
from twinviz.training import TrainConfig, Trainer  # noqa: E402


def _data(path: Path, n: int = 2048, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    wave = get_grid("apogee-aspcap-dr12").wavelength
    p = wave.size
    centres = rng.uniform(0, p, 400)
    pix = np.arange(p)
    flux = np.ones((n, p), np.float32)
    depth = rng.uniform(0.05, 0.5, (n, centres.size)).astype(np.float32)
    for k, c in enumerate(centres):
        lo, hi = int(max(0, c - 8)), int(min(p, c + 8))
        flux[:, lo:hi] *= 1 - depth[:, k:k + 1] * np.exp(-0.5 * ((pix[lo:hi] - c) / 1.5) ** 2)
    ds = make_spectra(flux, wave, rng.uniform(4000, 5500, n), rng.uniform(1, 3.5, n),
                      group=np.repeat(np.arange(n // 2), 2))
    return save_spectra(ds, path)


def bench(device: str, batch_size: int, steps: int, data: Path, out: Path, **overrides) -> dict:
    config = TrainConfig(data=str(data), out=str(out), device=device, batch_size=batch_size,
                         progress=False, **overrides)
    trainer = Trainer(config, overwrite=True)
    batches = list(trainer.source.batches(0))
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    for i in range(5):  # warm-up (allocator, kernels, autocast caches)
        trainer.train_step(batches[i % len(batches)], i)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        trainer.train_step(batches[i % len(batches)], i)
    sync()
    dt = time.perf_counter() - t0
    trainer.run.close()
    name = torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads)"
    path = "coefficients" if "coef" in batches[0] else "pixels"
    return {"device": name, "path": path, "twin": "on" if trainer.twin_weight else "off", "batch": batch_size,
            "ms_per_step": 1e3 * dt / steps, "spectra_per_s": steps * batch_size / dt}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--pixels", action="store_true",
                        help="also time a trainable basis (training through the 7214-px layers)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] if args.device in ("cpu", "all") else []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append("cuda")
    defaults = TrainConfig()
    print(f"default fader network: basis {defaults.basis_dim}, hidden {defaults.hidden}, latent "
          f"{defaults.latent_dim}, adversary {defaults.adversary_hidden}, {defaults.adversary_steps} "
          f"adversary step(s) per AE step; 7214 px")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = _data(Path(tmp) / "bench.nc")
        for device in devices:
            # the defaults: the bench file is twin pairs, so --twin-term auto trains with the twin term
            rows.append(bench(device, args.batch_size, args.steps, data, Path(tmp) / f"run-{device}"))
            rows.append(bench(device, args.batch_size, args.steps, data, Path(tmp) / f"off-{device}",
                              twin_term="off"))  # the paper's objective, the same run's peer
            if args.pixels:  # the same network trained through its 7214-px layers
                rows.append(bench(device, args.batch_size, args.steps, data, Path(tmp) / f"pix-{device}",
                                  basis_trainable=True))
    print(f"{'device':<34} {'trains on':<13} {'twin term':<10} {'batch':>6} {'ms/step':>9} {'spectra/s':>10}")
    for r in rows:
        print(f"{r['device']:<34} {r['path']:<13} {r['twin']:<10} {r['batch']:>6} {r['ms_per_step']:>9.1f} "
              f"{r['spectra_per_s']:>10.0f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
