"""A tiny, self-contained sample (model + spectra + latents) for the app's tests and benchmarks.

Not science: the spectra come from :class:`SampleSynthesizer`, a few hundred Gaussian lines on
the real APOGEE grid whose depths depend on four "abundances" and on Teff/logg, and the model is
an untrained fader network with the data's flux normalisation. It builds in about a second,
without the real synthesizer or any training, so UI tests stay fast and independent.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from twinviz import files as runfiles

__all__ = ["SAMPLE_ELEMENTS", "SampleSynthesizer", "TINY_TRAINING", "make_pixel_sample", "make_sample", "survey_sample",
           "synthetic_latents", "toy_arrays", "toy_dataset", "untrained_model", "visit", "wait_for", "write_toy"]

SAMPLE_ELEMENTS = ("Mg", "Si", "Ca", "Ni")
SAMPLE_GENERATOR = "twinviz.testing"


class SampleSynthesizer:
    """Deterministic toy spectra on a wavelength grid: ``spectrum(teff, logg, fe_h, x_fe)``."""

    def __init__(self, grid="apogee-aspcap-dr12", n_lines: int = 300, seed: int = 11):
        from twinviz.spectra.grid import get_grid

        self.grid = get_grid(grid)
        rng = np.random.default_rng(seed)
        wave = self.grid.wavelength
        self.centre = rng.uniform(wave[0], wave[-1], n_lines)
        self.width = rng.uniform(0.25, 0.6, n_lines)  # Å, ~ a few APOGEE pixels
        self.element = rng.integers(0, len(SAMPLE_ELEMENTS) + 1, n_lines)  # last index = Fe
        self.chi = rng.uniform(0.0, 6.0, n_lines)
        self.loggf = rng.normal(-0.5, 0.5, n_lines)
        self.g_sens = rng.normal(0.0, 0.3, n_lines)
        # Pixels each line touches (±5 widths) — keeps one spectrum a few ms.
        self._spans = [np.flatnonzero(np.abs(wave - c) < 5 * w) for c, w in zip(self.centre, self.width)]

    def spectrum(self, teff, logg, fe_h, x_fe) -> np.ndarray:
        """Normalised flux [P] (float32) for Teff (K), logg (dex), [Fe/H] and {element: [X/Fe]}."""
        theta = 5040.0 / float(teff)
        ab = np.array([float(x_fe.get(el, 0.0)) for el in SAMPLE_ELEMENTS] + [0.0]) + float(fe_h)
        log_tau = self.loggf + ab[self.element] - theta * self.chi + 2.2 + self.g_sens * (float(logg) - 2.25)
        depth = 1.0 - np.exp(-np.exp(np.clip(log_tau * np.log(10), -30, 5)))
        tau = np.zeros(self.grid.n_pixels)
        wave = self.grid.wavelength
        for j, span in enumerate(self._spans):
            if depth[j] > 1e-4:
                tau[span] += depth[j] * np.exp(-0.5 * ((wave[span] - self.centre[j]) / self.width[j]) ** 2)
        return np.exp(-tau).astype(np.float32)


def make_sample(directory, n_pairs: int = 60, seed: int = 0, latent_dim: int = 8) -> tuple[Path, Path, Path]:
    """Write a sample model dir, spectra file and latents file into ``directory``.

    Returns (model_dir, data_path, latents_path). Stars come in twin pairs (same chemistry,
    different Teff/logg), with [Fe/H] and [X/Fe] stored, ids 1000, 1001, …
    """
    import torch

    from twinviz.latents import encode_dataset, save_latents
    from twinviz.model import FaderNetwork, ModelConfig
    from twinviz.spectra.dataset import make_spectra, save_spectra

    from twinviz.latents.projection import add_projections

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    synth = SampleSynthesizer()
    rng = np.random.default_rng(seed)
    n = 2 * n_pairs
    group = np.repeat(np.arange(n_pairs), 2)
    fe_h = np.repeat(rng.normal(-0.1, 0.25, n_pairs), 2)
    x_fe = np.repeat(rng.normal(0.05, 0.1, (n_pairs, len(SAMPLE_ELEMENTS))), 2, axis=0)
    teff = rng.uniform(4100, 5400, n)
    logg = rng.uniform(1.2, 3.3, n)
    flux = np.stack([synth.spectrum(teff[i], logg[i], fe_h[i], dict(zip(SAMPLE_ELEMENTS, x_fe[i])))
                     for i in range(n)])
    ds = make_spectra(flux, synth.grid.wavelength, teff, logg, group=group, fe_h=fe_h, x_fe=x_fe,
                      elements=SAMPLE_ELEMENTS, star=np.arange(1000, 1000 + n),
                      attrs={"generator": SAMPLE_GENERATOR, "seed": seed})
    data_path = save_spectra(ds, directory / "sample.nc")

    torch.manual_seed(seed)
    config = ModelConfig(n_pixels=synth.grid.n_pixels, grid_id=synth.grid.id, latent_dim=latent_dim,
                         basis_dim=16, hidden=[32], adversary_hidden=[16])
    model = FaderNetwork(config)
    scale = float(flux.std()) or 1.0
    model.set_flux_normalisation(flux.mean(axis=0), scale)
    # Principal components as the flux basis: the untrained decoder then draws spectrum-like curves.
    _, _, vt = np.linalg.svd((flux - flux.mean(axis=0)) / scale, full_matrices=False)
    model.init_basis(vt[:config.basis_dim])
    model_dir = model.save_pretrained(directory / runfiles.MODEL_DIR)

    lat = encode_dataset(model, ds)
    lat = add_projections(lat, ("pca",))
    latents_path = save_latents(lat, directory / "sample.latents.nc")
    return model_dir, data_path, latents_path


def survey_sample(n_stars: int = 80, seed: int = 0, snr: float = 100.0, masked: float = 0.05):
    """A dataset that looks imported from a survey (``twinviz import apogee``): string
    APOGEE-style ids, no known groups (all −1), noise with ``flux_err`` = 1/snr, a ``mask`` with a
    random fraction ``masked`` of pixels plus a 40-pixel block per star bad (their flux 1 and
    flux_err 100, the importer's placeholders), and no synthesizer provenance (no truth)."""
    from twinviz.spectra.dataset import make_spectra

    synth = SampleSynthesizer()
    rng = np.random.default_rng([seed, 31])
    fe_h = rng.normal(-0.1, 0.25, n_stars)
    x_fe = rng.normal(0.05, 0.1, (n_stars, len(SAMPLE_ELEMENTS)))
    teff = rng.uniform(4100, 5400, n_stars)
    logg = rng.uniform(1.2, 3.3, n_stars)
    flux = np.stack([synth.spectrum(teff[i], logg[i], fe_h[i], dict(zip(SAMPLE_ELEMENTS, x_fe[i])))
                     for i in range(n_stars)])
    flux = flux + rng.normal(0.0, 1.0 / snr, flux.shape).astype(np.float32)
    err = np.full(flux.shape, 1.0 / snr, dtype=np.float32)
    p = flux.shape[1]
    mask = rng.random(flux.shape) < masked
    starts = rng.integers(0, p - 40, n_stars)
    for i, a in enumerate(starts):
        mask[i, a:a + 40] = True
    flux[mask], err[mask] = 1.0, 100.0
    ids = np.array([f"2M{rng.integers(0, 24):02d}{rng.integers(0, 10**6):06d}+{rng.integers(0, 10**7):07d}"
                    for _ in range(n_stars)])
    return make_spectra(flux, synth.grid.wavelength, teff, logg, flux_err=err, mask=mask, fe_h=fe_h,
                        x_fe=x_fe, elements=SAMPLE_ELEMENTS, snr=np.full(n_stars, snr), star=ids,
                        attrs={"generator": "twinviz.testing survey-like sample", "seed": seed})


def synthetic_latents(n: int, dim: int = 16, n_clusters: int = 50, seed: int = 0):
    """Clustered random latents [n, dim] and 2-D map coordinates [n, 2] for scale tests."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (n_clusters, dim)).astype(np.float32)
    which = rng.integers(0, n_clusters, n)
    z = centres[which] + rng.normal(0, 0.5, (n, dim)).astype(np.float32)
    xy = z[:, :2] + 0.3 * z[:, 2:4]
    return z, xy.astype(np.float32), which


# --- toy spectra for model and training tests -------------------------------------------------
# Each group shares a hidden "chemistry" vector c (n_chem values); a star's spectrum is
# exp(-Σ_lines depth·gaussian), where each line's depth depends non-linearly on c and on
# (Teff, logg), differently from line to line: a miniature of the real problem, with no
# synthesizer and no wavelength grid, so it builds in milliseconds.


def toy_arrays(n_groups: int = 100, group_size: int = 2, n_pixels: int = 160, n_chem: int = 3,
               n_lines: int = 24, seed: int = 0, noise: float = 0.0):
    """Arrays (flux [N,P], wavelength [P] Å, teff [N] K, logg [N] dex, group [N], chem [N,n_chem])."""
    lines = np.random.default_rng(1234)  # fixed "line list", independent of the sample seed
    centre = lines.uniform(0, n_pixels, n_lines)
    width = lines.uniform(1.0, 2.5, n_lines)
    chem_w = lines.normal(0, 1, (n_lines, n_chem))
    t_sens = lines.normal(0, 1.0, n_lines)
    g_sens = lines.normal(0, 0.6, n_lines)
    rng = np.random.default_rng(seed)
    n = n_groups * group_size
    chem = np.repeat(rng.normal(0, 1, (n_groups, n_chem)), group_size, axis=0)
    group = np.repeat(np.arange(n_groups), group_size)
    teff = rng.uniform(4000, 5500, n)
    logg = rng.uniform(1.0, 3.5, n)
    t = (teff - 4750) / 750
    g = (logg - 2.25) / 1.25
    strength = chem @ chem_w.T * 0.5 + t[:, None] * t_sens + g[:, None] * g_sens  # [N, lines]
    depth = 0.6 / (1 + np.exp(-strength))
    pix = np.arange(n_pixels)
    profile = np.exp(-0.5 * ((pix[None, :] - centre[:, None]) / width[:, None]) ** 2)  # [lines, P]
    flux = np.exp(-depth @ profile * 1.5)
    if noise:
        flux = flux + rng.normal(0, noise, flux.shape)
    wavelength = 15200.0 + 0.2 * pix
    return flux.astype(np.float32), wavelength, teff, logg, group, chem


def toy_dataset(n_groups: int = 100, seed: int = 0, noise: float = 0.0, **kw):
    """The toy arrays as a validated twinviz spectra dataset (flux_err set when noisy)."""
    flux, wave, teff, logg, group, _ = toy_arrays(n_groups=n_groups, seed=seed, noise=noise, **kw)
    from twinviz.spectra.dataset import make_spectra

    err = np.full_like(flux, noise) if noise else None
    return make_spectra(flux, wave, teff, logg, group=group, flux_err=err)


def write_toy(path, n_groups: int = 100, seed: int = 0, **kw):
    """Write a toy dataset to ``path`` (.nc or .zarr); returns the path."""
    from twinviz.spectra.dataset import save_spectra

    save_spectra(toy_dataset(n_groups=n_groups, seed=seed, **kw), path)
    return path


def untrained_model(ds, latent_dim: int = 4, hidden: int = 16, seed: int = 0):
    """A small untrained fader network (eval mode) on ``ds``'s grid, flux normalised to 0.8 ± 0.05."""
    import torch

    from twinviz.model import FaderNetwork, ModelConfig
    from twinviz.spectra.grid import grid_id

    torch.manual_seed(seed)
    config = ModelConfig(n_pixels=ds.sizes["wavelength"], grid_id=grid_id(ds["wavelength"].values),
                         latent_dim=latent_dim, basis_dim=0, hidden=[hidden], adversary_hidden=[8])
    model = FaderNetwork(config)
    model.set_flux_normalisation(np.full(config.n_pixels, 0.8), 0.05)
    return model.eval()


def make_pixel_sample(directory, n_stars: int = 120, seed: int = 70) -> tuple[Path, Path, Path]:
    """(model_dir, data_path, finder_dir): ``n_stars`` synthesizer spectra in twin pairs with
    low-d chemistry (only [Fe/H] and [α/Fe] vary), an untrained fader network on their grid, and a
    pixel twin finder fitted on 300 other training stars (chosen on 80 validation stars): the
    app's second ranking, in seconds."""
    from twinviz.spectra.dataset import save_spectra
    from twinviz.spectra.simulation import simulate
    from twinviz.evaluation.pixel_finder import fit_pixel_finder

    directory = Path(directory)
    ds = simulate(n_stars, seed=seed, chemistry="low-d")
    data = save_spectra(ds, directory / "stars.nc")
    model = untrained_model(ds, latent_dim=6)
    model.set_flux_normalisation(ds["flux"].values.mean(axis=0), float(ds["flux"].values.std()))
    model_dir = model.save_pretrained(directory / "model")
    finder = fit_pixel_finder(simulate(300, seed=seed + 1, chemistry="low-d"),
                              simulate(80, seed=seed + 2, chemistry="low-d"), n_components=16)
    return model_dir, data, finder.save(directory / "pixel-finder")


# The smallest run the run manager and the Training tab can launch: seconds per run on one core.
TINY_TRAINING = dict(data="train.nc", val="val.nc", epochs=2, batch_size=16, latent_dim=4, basis_dim=8,
                     hidden=[16], adversary_hidden=[16], log_every=1, warmup_steps=0, val_max_stars=40,
                     num_threads=1, checkpoint_every=0)


def wait_for(condition, timeout: float = 60.0, interval: float = 0.1):
    """Poll ``condition()`` until it returns something truthy (returned), else AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


#: Panel's model modules the app's pages hold (what a client must know to read the document).
#: Only these: importing every Panel model would register ones whose JavaScript comes from a
#: CDN, and a server in the same process would then list those on every page it serves.
PAGE_MODEL_MODULES = ("browser", "layout", "location", "markup", "reactive_html", "tabs", "tabulator", "widgets")


class Visitor:
    """A non-rendering visitor of a served app: a Bokeh client session on its own thread and
    event loop, so it neither needs nor disturbs the caller's loop (Playwright's, a test's).
    ``.document`` is the pulled document; ``.close()`` closes the websocket and ends the thread."""

    def __init__(self, url: str, arguments: dict | None = None, timeout: float = 300.0):
        import queue
        import threading

        self._commands: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(url, arguments), daemon=True,
                                        name="twinviz-visitor")
        self._thread.start()
        try:
            outcome = self._ready.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{url}: no document within {timeout} s") from None
        if isinstance(outcome, BaseException):
            raise outcome
        self.session = outcome
        self.document = outcome.document

    def _run(self, url, arguments) -> None:
        import asyncio
        import importlib

        from bokeh.client import pull_session
        from tornado.ioloop import IOLoop

        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            for name in PAGE_MODEL_MODULES:
                importlib.import_module(f"panel.models.{name}")
            session = pull_session(url=url, io_loop=IOLoop.current(), arguments=arguments)
        except BaseException as exc:  # handed to the caller
            self._ready.put(exc)
            return
        self._ready.put(session)
        self._commands.get()  # until close()
        session.close()
        IOLoop.current().run_sync(lambda: asyncio.sleep(0.05))  # let the close frame go out

    def close(self) -> None:
        if self._thread.is_alive():
            self._commands.put("close")
            self._thread.join(timeout=30)


def visit(url: str, arguments: dict | None = None) -> Visitor:
    """A visitor that does not render: opens a websocket to the served app at ``url`` and pulls
    its whole document, as a browser would (``bokeh.client``), on a thread of its own.
    Returns a :class:`Visitor` (``.document``, ``.close()``). Safe from any thread, including
    one whose event loop is running."""
    return Visitor(url, arguments)
