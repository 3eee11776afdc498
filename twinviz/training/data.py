"""Mini-batches of spectra for training: from memory, or streamed from chunked (zarr) files.

Both sources yield the same batch dicts of CPU tensors:
  flux [b, P] float32 (dataset units), teff [b] K, logg [b] dex,
  weight [b, P] float32 per-pixel loss weight, or None when every weight is 1.

Per-pixel weight (docs/model.md): 0 for masked or non-finite pixels, else
σ₀² / (σ² + σ₀²) with σ the pixel's flux_err and σ₀ = flux_err_floor, so noiseless pixels
weigh 1 and a pixel with σ = σ₀ weighs ½.

Order: an epoch's order depends only on (seed, epoch), so a resumed run sees exactly the
batches an uninterrupted one would. With DDP over W ranks, each global batch of B stars is
split into W interleaved slices of B/W (the DistributedSampler scheme at batch level): the
averaged gradients equal those of one process on the same B stars. With the twin term on the
training data's twins (config.twin_term "on", or "auto" on a file of twin pairs; in-memory data
only) a batch is B/2 whole twin pairs, rows 2i and 2i+1 twins, split over the ranks by pairs.
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr

__all__ = ["ArraySource", "StreamSource", "cycle_batches", "describe_twin_term", "pixel_weights", "make_source"]


def pixel_weights(flux_err, mask, flux, floor: float):
    """Per-pixel loss weights (see module doc) as float32, or None when all are equal (the
    loss is a weighted *mean*, so equal weights are the same as none)."""
    bad = ~np.isfinite(flux)
    if mask is not None:
        bad |= mask
    if flux_err is None:
        if not bad.any():
            return None
        return (~bad).astype(np.float32)
    err = np.nan_to_num(np.asarray(flux_err, dtype=np.float32), nan=np.inf)
    w = floor ** 2 / (err ** 2 + floor ** 2)
    w[bad] = 0.0
    if w.size and np.all(w == w.flat[0]) and w.flat[0] > 0:
        return None
    return w.astype(np.float32)


def cycle_batches(source):
    """Batches of ``source``, epoch after epoch, without end (the twin set's side batches)."""
    epoch = 0
    while True:
        yield from source.batches(epoch)
        epoch += 1


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


class ArraySource:
    """Training data held in memory (numpy)."""

    def __init__(self, ds: xr.Dataset, batch_size: int, *, rank: int = 0, world: int = 1,
                 seed: int = 0, floor: float = 0.005, pairs: np.ndarray | None = None):
        self.flux = np.ascontiguousarray(ds["flux"].values, dtype=np.float32)
        self.teff = ds["teff"].values.astype(np.float32)
        self.logg = ds["logg"].values.astype(np.float32)
        err = ds["flux_err"].values if "flux_err" in ds else None
        mask = ds["mask"].values.astype(bool) if "mask" in ds else None
        self.weight = pixel_weights(err, mask, self.flux, floor)
        if mask is not None or not np.isfinite(self.flux).all():
            # Masked/NaN pixels enter the loss with weight 0; give them a finite value so
            # 0 × NaN never poisons the sum. The encoder sees them as "unknown" via the weight.
            bad = ~np.isfinite(self.flux) | (mask if mask is not None else False)
            self.flux = np.where(bad, np.float32(1.0), self.flux)
            self.bad = bad
        else:
            self.bad = None
        n = len(self.teff)
        self.global_batch = min(batch_size, n)
        self.global_batch -= self.global_batch % world
        if self.global_batch < world:
            raise ValueError(f"{n} training stars cannot feed {world} ranks")
        self.rank, self.world, self.seed = rank, world, seed
        self.steps_per_epoch = n // self.global_batch  # the last partial batch is dropped
        self.coef = self.resid = None
        self.pairs = pairs  # [n_pairs, 2] twins: batches of whole pairs (the twin term)
        if pairs is not None:
            self.pairs_per_batch = self.global_batch // 2 // world * world
            if self.pairs_per_batch < world or len(pairs) < self.pairs_per_batch:
                raise ValueError(f"{len(pairs)} twin pairs cannot fill batches of {self.global_batch} "
                                 f"stars on {world} rank(s)")
            self.steps_per_epoch = len(pairs) // self.pairs_per_batch

    @torch.no_grad()
    def project(self, model, chunk: int = 2048) -> bool:
        """Precompute the frozen-basis coefficients of every spectrum (and the squared norm of
        what the basis leaves out), so training never touches the n_pixels-wide layers.

        Only valid when the loss weights are uniform: then the pixel MSE of x̂ = Vᵀĉ equals
        (‖ĉ − c‖² + ‖x − Vᵀc‖²)/P for the orthonormal basis V. Returns whether it projected.
        """
        c = model.config
        if self.weight is not None or not c.basis_dim or c.basis_trainable or c.conv_channels:
            return False
        n = len(self.teff)
        coef = np.empty((n, model.config.basis_dim), dtype=np.float32)
        resid = np.empty(n, dtype=np.float32)
        w = model.to_basis.weight.detach().cpu().double()
        dev = model.device
        for a in range(0, n, chunk):
            flux = torch.from_numpy(self.flux[a:a + chunk]).to(dev)
            mask = None if self.bad is None else torch.from_numpy(self.bad[a:a + chunk]).to(dev)
            u = model.scale_labels(self.teff[a:a + chunk], self.logg[a:a + chunk])
            # in double on the CPU: the residual is a small difference of large sums
            x = model.normalise_flux(flux, mask, u).cpu().double()
            c = x @ w.T
            coef[a:a + chunk] = c.float().numpy()
            resid[a:a + chunk] = ((x * x).sum(1) - (c * c).sum(1)).clamp_min(0).float().numpy()
        self.coef, self.resid = coef, resid
        self.flux = None  # the pixels are no longer needed: free the memory
        return True

    def batches(self, epoch: int, skip: int = 0):
        """Yield this rank's batches of ``epoch``, skipping the first ``skip`` (for resume)."""
        if self.pairs is not None:  # rows 2i and 2i+1 of every batch are twins
            order, b = _epoch_rng(self.seed, epoch).permutation(len(self.pairs)), self.pairs_per_batch
            for step in range(skip, self.steps_per_epoch):
                yield self._take(self.pairs[order[step * b:(step + 1) * b][self.rank::self.world]].reshape(-1))
            return
        order = _epoch_rng(self.seed, epoch).permutation(len(self.teff))
        b = self.global_batch
        for step in range(skip, self.steps_per_epoch):
            idx = np.sort(order[step * b:(step + 1) * b][self.rank::self.world])
            yield self._take(idx)

    def _take(self, idx):
        if self.coef is not None:
            return {"coef": torch.from_numpy(self.coef[idx]), "resid": torch.from_numpy(self.resid[idx]),
                    "teff": torch.from_numpy(self.teff[idx]), "logg": torch.from_numpy(self.logg[idx])}
        return {
            "flux": torch.from_numpy(self.flux[idx]),
            "teff": torch.from_numpy(self.teff[idx]),
            "logg": torch.from_numpy(self.logg[idx]),
            "weight": None if self.weight is None else torch.from_numpy(self.weight[idx]),
            "mask": None if self.bad is None else torch.from_numpy(self.bad[idx]),
        }


class StreamSource:
    """Training data read block by block from a lazily opened (dask-backed) dataset.

    Blocks are aligned to the file's star chunks; each epoch shuffles the block order and the
    stars within each block, so only a few blocks are ever in memory. Ranks take interleaved
    blocks. The steps per epoch are fixed in advance (equal on all ranks).
    """

    def __init__(self, ds: xr.Dataset, batch_size: int, *, block: int = 4096, rank: int = 0,
                 world: int = 1, seed: int = 0, floor: float = 0.005):
        self.ds = ds
        self.n = ds.sizes["star"]
        chunks = ds["flux"].chunks
        if chunks:  # align to whole storage chunks, several per block when they are small
            step = chunks[0][0]
            block = max(step, (block // step) * step)
        self.block = block
        self.starts = list(range(0, self.n, block))
        self.teff = ds["teff"].values.astype(np.float32)
        self.logg = ds["logg"].values.astype(np.float32)
        self.has_err = "flux_err" in ds
        self.has_mask = "mask" in ds
        self.rank, self.world, self.seed, self.floor = rank, world, seed, floor
        self.batch = max(1, min(batch_size, self.n) // world)
        self.global_batch = self.batch * world
        # The smallest rank share decides how many steps every rank takes.
        per_rank = [sum(min(block, self.n - s) for s in self.starts[r::world]) for r in range(world)]
        self.steps_per_epoch = max(1, min(per_rank) // self.batch)

    def _load(self, start: int):
        stop = min(self.n, start + self.block)
        part = self.ds.isel(star=slice(start, stop))
        flux = np.asarray(part["flux"].values, dtype=np.float32)
        err = part["flux_err"].values if self.has_err else None
        mask = part["mask"].values.astype(bool) if self.has_mask else None
        weight = pixel_weights(err, mask, flux, self.floor)
        bad = ~np.isfinite(flux) | (mask if mask is not None else False)
        flux = np.where(bad, np.float32(1.0), flux)
        return flux, self.teff[start:stop], self.logg[start:stop], weight, bad if bad.any() else None

    def batches(self, epoch: int, skip: int = 0):
        rng = _epoch_rng(self.seed, epoch)
        blocks = [self.starts[i] for i in rng.permutation(len(self.starts))][self.rank::self.world]
        pending: list[dict] = []
        have = 0
        step = 0
        for start in blocks:
            flux, teff, logg, weight, bad = self._load(start)
            order = rng.permutation(len(teff))
            for lo in range(0, len(order), self.batch):
                idx = order[lo:lo + self.batch]
                pending.append({"flux": flux[idx], "teff": teff[idx], "logg": logg[idx],
                                "weight": None if weight is None else weight[idx],
                                "mask": None if bad is None else bad[idx]})
                have += len(idx)
                while have >= self.batch:
                    batch, pending, have = _split(pending, self.batch)
                    if step >= skip:
                        yield batch
                    step += 1
                    if step >= self.steps_per_epoch:
                        return


def _split(pending: list[dict], size: int):
    """Concatenate pieces into one batch of ``size`` and return the remainder."""
    keys = pending[0].keys()
    cat = {}
    for k in keys:
        parts = [p[k] for p in pending]
        if any(p is None for p in parts):
            if all(p is None for p in parts):
                cat[k] = None
                continue
            ref = next(p for p in parts if p is not None)
            fill = np.ones if k == "weight" else np.zeros
            parts = [p if p is not None else fill((len(q["teff"]), ref.shape[1]), dtype=ref.dtype)
                     for p, q in zip(parts, pending)]
        cat[k] = np.concatenate(parts)
    batch = {k: (None if v is None else torch.from_numpy(np.ascontiguousarray(v[:size]))) for k, v in cat.items()}
    rest = {k: (None if v is None else v[size:]) for k, v in cat.items()}
    n_rest = len(rest["teff"])
    return batch, ([rest] if n_rest else []), n_rest


def make_source(path: str, config, *, rank: int = 0, world: int = 1, logger=None):
    """Open the training file and pick in-memory or streamed reading (config.stream)."""
    from twinviz.spectra.dataset import load_spectra, open_spectra
    from twinviz.training.config import TrainConfigError

    lazy = open_spectra(path, chunks={}, validate=False)
    n_star, n_pix = lazy["flux"].shape
    gigabytes = n_star * n_pix * 4 * (1 + ("flux_err" in lazy) + 0.25 * ("mask" in lazy)) / 1e9
    stream = config.stream == "always" or (config.stream == "auto" and gigabytes > config.memory_limit_gb)
    if logger:
        logger.info("training data %s: %d stars × %d px (%.2f GB), %s", path, n_star, n_pix,
                    gigabytes, "streamed in blocks" if stream else "in memory")
    wanted = config.twin_weight > 0 and config.twin_term != "off" and not config.twin_set
    if stream and wanted and config.twin_term == "on":
        raise TrainConfigError(f"{path}: flux: --twin-term on needs the training spectra in memory "
                               f"({gigabytes:.1f} GB here) and streaming reads them in blocks. Fix: "
                               "--stream never (with --memory-limit-gb above that size), or --twin-term off")
    if stream:
        from twinviz.spectra.dataset import validate
        validate(lazy, source=path, check_values=False)
        if wanted and logger:
            logger.info("twin term off (auto): the training data is streamed and the term needs it in memory")
        return StreamSource(lazy, config.batch_size, block=config.stream_block, rank=rank,
                            world=world, seed=config.seed, floor=config.flux_err_floor), lazy
    ds = load_spectra(path)
    pairs = twin_term_pairs(config, ds["group"].values, path, logger) if wanted else None
    if logger and not wanted and not config.twin_set:
        logger.info("twin term off (--twin-term %s, --twin-weight %g): the paper's objective, z never sees a "
                    "twin", config.twin_term, config.twin_weight)
    return ArraySource(ds, config.batch_size, rank=rank, world=world, seed=config.seed,
                       floor=config.flux_err_floor, pairs=pairs), ds


# --twin-term auto uses the training data's twins when at least this share of its stars are in a
# twin pair: a file of twin pairs (the suite's *many* regime). With the term a batch holds only
# whole pairs, so the stars without a twin would leave training; a survey with a few cluster
# members keeps the paper's objective and learns from its twins in the metric (`fit-metric`).
AUTO_TWIN_SHARE = 0.5


def twin_term_pairs(config, groups, path, logger=None):
    """The training data's twin pairs for the twin term (config.twin_term "on" or "auto", no
    twin_set), or None when "auto" leaves the term off; "on" without enough twins is an error."""
    from twinviz.training.config import TrainConfigError
    from twinviz.twins.groups import twin_pairs

    pairs = twin_pairs(groups)
    share = 2 * len(pairs) / max(1, len(groups))
    if config.twin_term == "on":
        if len(pairs) * 2 < config.batch_size:
            raise TrainConfigError(f"{path}: group: --twin-term on needs training twins (stars sharing a "
                                   f"`group` id) to fill batches of {config.batch_size}; this file has "
                                   f"{len(pairs)} pair(s). Fix: --twin-term off, or training data with groups")
    elif len(pairs) * 2 < config.batch_size or share < AUTO_TWIN_SHARE:
        if logger and len(pairs):
            logger.info("twin term off (auto): %d of %d training stars are in twin pairs (it needs half, and "
                        "%d to fill a batch); their twins still fit the twin metric. To use them in the loss "
                        "too: --twin-set with them, or --twin-term on (trains on the pairs only)",
                        2 * len(pairs), len(groups), config.batch_size)
        return None
    if logger:
        logger.info("twin term on (%s, μ %g): %d training twin pairs, %.0f %% of the stars; z is then "
                    "twin-supervised (the many-twins regime). For the paper's objective: --twin-term off",
                    config.twin_term, config.twin_weight, len(pairs), 100 * share)
    return pairs


def describe_twin_term(config, pairs) -> tuple[float, dict]:
    """The twin term's weight as resolved (0 when off: ``pairs`` None) and the bundle
    provenance's record of what it saw (bundle/provenance.py, ``twin_supervision``)."""
    if pairs is None:
        return 0.0, {"loss": "none"}
    return config.twin_weight, {"loss": "twin term", "weight": config.twin_weight,
                                "path": str(config.twin_set or config.data),
                                "twins": f"{2 * len(pairs)} stars in {len(pairs)} twin pairs"}


def make_twin_source(config, *, rank: int = 0, world: int = 1, logger=None):
    """The known twins of ``config.twin_set`` as batches of whole pairs for the twin term (None
    without a twin set). The batch holds up to ``batch_size`` stars, fewer when the set is small."""
    from twinviz.spectra.dataset import load_spectra
    from twinviz.training.config import TrainConfigError
    from twinviz.twins.groups import twin_pairs

    if not config.twin_set:
        return None
    ds = load_spectra(config.twin_set)
    pairs = twin_pairs(ds["group"].values)
    batch = min(config.batch_size, 2 * len(pairs)) // (2 * world) * 2 * world
    if batch < 2 * world:
        raise TrainConfigError(f"{config.twin_set}: group: the twin set needs stars sharing a `group` id; it has "
                               f"{len(pairs)} twin pair(s). Fix: give known twins (e.g. cluster members with "
                               "their cluster as `group`), or no --twin-set")
    if logger:
        logger.info("twin set %s: %d stars in %d groups, %d pairs; %d stars per twin batch", config.twin_set,
                    ds.sizes["star"], len(set(ds["group"].values[ds["group"].values >= 0])), len(pairs), batch)
    return ArraySource(ds, batch, rank=rank, world=world, seed=config.seed + 1, floor=config.flux_err_floor,
                       pairs=pairs)
