"""Speed of the built-in synthesizer: batch spectra per second and single-spectrum latency.

    python benchmarks/bench_synth.py [--n 2000] [--calls 200] [--grid apogee-aspcap-dr12]

Batch: ``Synthesizer.batch`` on N stars drawn by ``draw_labels`` (after one warm-up call).
Latency: ``Synthesizer.spectrum`` at a new Teff/logg each call, as a slider would ask.
Realistic rows: the same with the ``realistic`` preset's per-star nuisances (microturbulence
scatter, macroturbulence, RV residual), and ``simulate(..., nuisances="realistic")`` end to end
(labels, nuisances, continuum error, masks, noise; no file written).
The issue's targets: ≥ 500 spectra/s in batch, < 20 ms per spectrum, with or without the preset.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from twinviz.spectra.nuisances import PRESETS, draw_nuisances
from twinviz.spectra.synth import LINELIST_VERSION, Synthesizer, draw_labels
from twinviz.spectra.simulation import simulate


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="spectra in the batch run")
    parser.add_argument("--calls", type=int, default=200, help="single-spectrum calls to time")
    parser.add_argument("--grid", default="apogee-aspcap-dr12")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    synth = Synthesizer(args.grid)
    setup_s = time.perf_counter() - start
    labels = draw_labels((args.n + 1) // 2, seed=0)
    teff, logg, fe_h, x_fe = (labels[k][:args.n] for k in ("teff", "logg", "fe_h", "x_fe"))
    synth.batch(teff[:64], logg[:64], fe_h[:64], x_fe[:64])  # warm-up (allocator, BLAS threads)

    start = time.perf_counter()
    synth.batch(teff, logg, fe_h, x_fe)
    batch_s = time.perf_counter() - start

    rng = np.random.default_rng(0)
    latencies = []
    for _ in range(args.calls):
        t, g = rng.uniform(4000, 5500), rng.uniform(1.0, 3.5)
        start = time.perf_counter()
        synth.spectrum(t, g, 0.0, None)
        latencies.append(time.perf_counter() - start)
    lat_ms = np.array(latencies) * 1e3

    real = draw_nuisances(args.n, PRESETS["realistic"], seed=0, logg=logg)
    extra = {k: real[k] for k in ("vmicro", "vbroad", "rv")}
    synth.batch(teff[:64], logg[:64], fe_h[:64], x_fe[:64], **{k: v[:64] for k, v in extra.items()})
    start = time.perf_counter()
    synth.batch(teff, logg, fe_h, x_fe, **extra)
    real_batch_s = time.perf_counter() - start
    real_lat = []
    for _ in range(args.calls):
        t, g = rng.uniform(4000, 5500), rng.uniform(1.0, 3.5)
        v = dict(vmicro=rng.normal(2.0, 0.25), vbroad=rng.uniform(0, 8), rv=rng.normal(0, 0.3))
        start = time.perf_counter()
        synth.spectrum(t, g, 0.0, None, **v)
        real_lat.append(time.perf_counter() - start)
    real_lat_ms = np.array(real_lat) * 1e3
    start = time.perf_counter()
    simulate(args.n // 2, seed=0, snr=100, grid=args.grid)
    sim_s = time.perf_counter() - start
    start = time.perf_counter()
    simulate(args.n // 2, seed=0, snr=100, population="mixed", nuisances="realistic", grid=args.grid)
    real_sim_s = time.perf_counter() - start

    rows = [
        ("grid", f"{synth.grid.id} ({synth.grid.n_pixels} px)"),
        ("line list", f"{LINELIST_VERSION} ({synth.lines['wavelength'].size} lines on this grid)"),
        ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}"),
        ("load average (1 min)", f"{os.getloadavg()[0]:.1f}  (other work on the machine slows this)"),
        ("set-up (Synthesizer())", f"{setup_s * 1e3:.0f} ms"),
        (f"batch of {args.n}", f"{batch_s:.2f} s = {args.n / batch_s:.0f} spectra/s"),
        (f"single spectrum ({args.calls} calls)",
         f"median {np.median(lat_ms):.2f} ms, p95 {np.percentile(lat_ms, 95):.2f} ms"),
        ("75 000 spectra (paper's set) ≈", f"{75_000 * batch_s / args.n / 60:.1f} min"),
        (f"batch of {args.n}, realistic preset", f"{real_batch_s:.2f} s = {args.n / real_batch_s:.0f} spectra/s"),
        (f"single spectrum, realistic ({args.calls} calls)",
         f"median {np.median(real_lat_ms):.2f} ms, p95 {np.percentile(real_lat_ms, 95):.2f} ms"),
        (f"simulate {args.n // 2 * 2}, defaults + snr",
         f"{sim_s:.2f} s = {args.n // 2 * 2 / sim_s:.0f} spectra/s (incl. Synthesizer set-up)"),
        (f"simulate {args.n // 2 * 2}, mixed + realistic + snr",
         f"{real_sim_s:.2f} s = {args.n // 2 * 2 / real_sim_s:.0f} spectra/s (incl. Synthesizer set-up)"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}} | result")
    print(f"{'-' * width}-|-{'-' * 40}")
    for key, value in rows:
        print(f"{key:<{width}} | {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
