"""The trainer: the paper's alternating adversarial objective, on one device or under DDP.

Per step, on a batch (x, u) with discretised labels u_n (docs/science.md, Method):

  z = E(x, u), x̂ = D(z, u)                                  one encoder/decoder pass
  adversary_steps ×:  L_A = CE(A(z.detach()), u_n)            update A only
  L_AE = MSE_w(x̂, x) − λ(step) · CE(A(z), u_n) [+ μ · T(z)] [+ ν · I(z)]   update E and D only
  (T: twin_term.py; I: how far z moves when nuisances are added to x, augment.py)

λ(step) ramps linearly from 0 to ``adversary_weight`` over ``adversary_ramp_steps``; λ = 0 is
the paper's baseline and runs through the same code (the adversary is still trained and
reported, it just does not push on the encoder). MSE_w is the per-pixel weighted mean of the
squared error in the model's normalised flux units (see docs/model.md).

Distributed: launched by ``torchrun``, each process trains on its slice of every global
batch; E/D and A are wrapped in DistributedDataParallel, rank 0 alone writes the run
directory and runs validation.
"""
from __future__ import annotations

import math
import os
import time
import traceback
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from twinviz import files as runfiles
from twinviz.bundle.fit import has_twins
from twinviz.bundle.provenance import describe_file
from twinviz.devices import DeviceError, resolve_devices, torch_device_ids
from twinviz.latents.ood import write_validation_stats
from twinviz.model import FaderNetwork
from twinviz.spectra.dataset import open_spectra
from twinviz.training.checkpoint import load_checkpoint, save_checkpoint
from twinviz.training.config import TrainConfig, TrainConfigError
from twinviz.training.data import cycle_batches, describe_twin_term, make_source, make_twin_source
from twinviz.training.augment import invariance_loss, make_augmenter
from twinviz.training.model_init import build_model
from twinviz.training.rundir import RunDirectory, StopFlag, prepare_fresh_run, truncate_metrics
from twinviz.training.twin_term import gather_rows, twin_loss
from twinviz.training.validation import ValidationSet, best_epoch_key

__all__ = ["Trainer", "train", "build_model", "resolve_device"]


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device of this process for a config's ``device`` (one resolution for the
    trainer, the run manager and the commands: :func:`twinviz.devices.resolve_devices`):
    "auto" → CUDA when present (cuda:LOCAL_RANK under torchrun), else CPU."""
    try:
        return torch.device(resolve_devices(name, present=torch_device_ids(), local_rank=local_rank)[0])
    except DeviceError as exc:
        raise TrainConfigError(str(exc)) from None


class _Autoencoder(nn.Module):
    """E and D of a FaderNetwork as one module (what DDP wraps): (x_n, u) → (z, x̂_n)."""

    def __init__(self, model: FaderNetwork):
        super().__init__()
        self.model_ref = [model]  # a list, so the model is not registered twice
        if model.config.basis_dim:
            self.to_basis, self.from_basis = model.to_basis, model.from_basis
        self.encoder, self.decoder = model.encoder, model.decoder
        if model.conv is not None:
            self.conv = model.conv

    def forward(self, inp, u, in_basis: bool = False):
        """inp: normalised flux [B, P], or frozen-basis coefficients [B, K] when in_basis."""
        model = self.model_ref[0]
        if in_basis:
            z = model.encode_basis(inp, u)
            return z, model.decode_basis(z, u)
        z = model.encode_normalised(inp, u)
        return z, model.decode_normalised(z, u)


class Trainer:
    """Owns the model, both optimisers, the data, the step counter and the run directory.

    ``Trainer(config, resume=False).fit()`` trains and returns the run directory. Under
    ``torchrun`` (WORLD_SIZE > 1) it joins the process group itself.
    """

    def __init__(self, config: TrainConfig, *, resume: bool = False, overwrite: bool = False):
        self.config = config.validate()
        self.rank = int(os.environ.get("RANK", 0))
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = resolve_device(config.device, self.local_rank)
        self.is_main = self.rank == 0
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            torch.distributed.init_process_group(backend)
        out = Path(config.out)
        if self.is_main and not resume:
            prepare_fresh_run(out, overwrite)
        self.run = RunDirectory(out) if self.is_main else None
        log = self.run.logger if self.run else None
        self.log = log.info if log else (lambda *a, **k: None)

        self.source, train_ds = make_source(config.data, config, rank=self.rank, world=self.world, logger=log)
        self.val = None
        if config.val and self.is_main:
            from twinviz.spectra.dataset import load_spectra

            self.val = ValidationSet(load_spectra(config.val), config.val_max_stars, config.seed)
            self.log("validation: %d stars of %s%s", len(self.val), config.val,
                     "" if self.val.partner is not None else " (no groups: no twin ranks)")
        self.keep_latest = (config.twin_metric == "fit" and self.val is not None  # best_epoch_key's rule 1
                            and self.val.partner is not None and has_twins(train_ds))
        if self.is_main:  # what the kept weights were trained and chosen on (the bundle's provenance)
            self.trained_on, self.chosen_on = describe_file(config.data), describe_file(config.val)
        self.total_steps = config.epochs * self.source.steps_per_epoch
        if config.max_steps:
            self.total_steps = min(self.total_steps, config.max_steps)

        torch.manual_seed(config.seed)
        self.progress = {"step": 0, "epoch": 0, "batch": 0, "best": {}, "best_value": None, "elapsed": 0.0}
        opt_states, rng_state = None, None
        if resume:
            model, opt_states, self.progress, rng_state = load_checkpoint(out / runfiles.CHECKPOINT_DIR, self.device)
            self.log("resuming %s at step %d (epoch %d, batch %d)", out, self.progress["step"],
                     self.progress["epoch"], self.progress["batch"])
        else:
            model = build_model(config, train_ds, logger=log)
        self.model = model.to(self.device)
        # A resumed model keeps its own grid; the data handed to it must match.
        self.model.check_grid(train_ds)
        if config.val and self.is_main:
            self.model.check_grid(open_spectra(config.val, chunks={}, validate=False)["wavelength"].values)

        self.twins = make_twin_source(config, rank=self.rank, world=self.world, logger=log)
        self.twin_weight, self.twin_supervision = describe_twin_term(  # as resolved: auto may leave it off
            config, self.twins.pairs if self.twins else getattr(self.source, "pairs", None))
        self.augmenter = make_augmenter(config, train_ds["wavelength"].values, self.log)  # needs every batch's pixels
        if not self.augmenter and hasattr(self.source, "project") and self.source.project(self.model):
            self.log("frozen basis: training on %d precomputed basis coefficients per spectrum",
                     self.model.config.basis_dim)
            if self.twins:
                self.twins.project(self.model)
        self.twin_batches = cycle_batches(self.twins) if self.twins else None
        ae = _Autoencoder(self.model)
        self.ae_params = [q for q in ae.parameters() if q.requires_grad]
        # Fused Adam: on CPU the per-parameter update of the wide basis layers otherwise costs
        # about a third of a step.
        self.opt_ae = torch.optim.Adam(self.ae_params, lr=config.lr, weight_decay=config.weight_decay,
                                       fused=True)
        self.opt_adv = torch.optim.Adam(self.model.adversary.parameters(), lr=config.adversary_lr,
                                        betas=(0.5, 0.999), fused=True)
        if opt_states:
            self.opt_ae.load_state_dict(opt_states["ae"])
            self.opt_adv.load_state_dict(opt_states["adversary"])
        if rng_state is not None:
            torch.set_rng_state(rng_state)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ae = DDP(ae, device_ids=ids)
            self.adv = DDP(self.model.adversary, device_ids=ids)
        else:
            self.ae, self.adv = ae, self.model.adversary
        self.autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16))
                         if self.device.type == "cuda" else None)
        self.stop = StopFlag()
        self._resumed = resume

    # --- schedules -------------------------------------------------------------------------
    def lambda_at(self, step: int) -> float:
        """Adversary weight λ at a step (linear ramp from 0 when adversary_ramp_steps > 0)."""
        c = self.config
        if c.adversary_ramp_steps:
            return c.adversary_weight * min(1.0, step / c.adversary_ramp_steps)
        return c.adversary_weight

    def lr_at(self, step: int) -> float:
        """AE learning rate: linear warm-up, then cosine decay to lr_min_factor·lr (or constant)."""
        c = self.config
        if c.warmup_steps and step < c.warmup_steps:
            return c.lr * (step + 1) / c.warmup_steps
        if c.lr_schedule == "constant":
            return c.lr
        span = max(1, self.total_steps - c.warmup_steps)
        t = min(1.0, (step - c.warmup_steps) / span)
        return c.lr * (c.lr_min_factor + (1 - c.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * t)))

    # --- one step --------------------------------------------------------------------------
    def _inputs(self, batch: dict):
        """(u, network input, basis residual, loss weights, in_basis) of a batch on the device."""
        m, dev = self.model, self.device
        u = m.scale_labels(batch["teff"].to(dev), batch["logg"].to(dev))
        if "coef" in batch:
            return u, batch["coef"].to(dev, non_blocking=True), batch["resid"].to(dev), None, True
        mask = None if batch.get("mask") is None else batch["mask"].to(dev)
        weight = None if batch.get("weight") is None else batch["weight"].to(dev)
        return u, m.normalise_flux(batch["flux"].to(dev, non_blocking=True), mask, u), None, weight, False

    def train_step(self, batch: dict, step: int) -> dict:
        """One alternating update (adversary_steps × A, then E/D); returns float metrics."""
        c, m, dev = self.config, self.model, self.device
        u, target, resid, weight, in_basis = self._inputs(batch)
        bins = m.label_bins(batch["teff"].to(dev), batch["logg"].to(dev))
        lam = self.lambda_at(step)
        amp = self.autocast or nullcontext
        inp, u_in = target, u
        if self.twin_batches:  # the twin set's pairs ride along in the same forward pass (DDP-safe)
            u_t, t_t, _, _, t_basis = self._inputs(next(self.twin_batches))
            if in_basis and not t_basis:
                with torch.no_grad():
                    t_t = m.to_basis(t_t)
            inp, u_in = torch.cat([target, t_t]), torch.cat([u, u_t])
        n_main, n_twin = len(target), len(inp) - len(target)
        if self.augmenter:  # the same stars with nuisances added ride along too (seeded per step)
            flux_a, mask_a = self.augmenter.augment(batch["flux"], batch.get("mask"), (c.seed, self.rank, step))
            inp, u_in = torch.cat([inp, m.normalise_flux(flux_a.to(dev), mask_a.to(dev), u)]), torch.cat([u_in, u])
        with amp():
            z_all, out = self.ae(inp, u_in, in_basis)
        z, out = z_all[:n_main], out[:n_main]
        z_twin, z_aug = z_all[n_main:n_main + n_twin], z_all[n_main + n_twin:]
        for _ in range(c.adversary_steps):
            with amp():
                logits = self.adv(z.detach())
            loss_a = m.adversary_loss(logits, bins)
            self.opt_adv.zero_grad(set_to_none=True)
            loss_a.backward()
            if c.grad_clip:
                nn.utils.clip_grad_norm_(m.adversary.parameters(), c.grad_clip)
            self.opt_adv.step()
        # AE update: the adversary is frozen (no gradients into A, no DDP sync for it).
        for p in m.adversary.parameters():
            p.requires_grad_(False)
        try:
            with amp():
                logits = m.adversary_logits(z)
            adv_ce = m.adversary_loss(logits, bins)
            sq = (out.float() - target) ** 2
            if in_basis:  # pixel MSE through the orthonormal basis (see ArraySource.project)
                recon = (sq.sum(1) + resid).mean() / m.config.n_pixels
            elif weight is None:
                recon = sq.mean()
            else:
                recon = (sq * weight).sum() / weight.sum().clamp_min(1e-12)
            twin = (twin_loss(gather_rows((z_twin if self.twins else z).float(), self.world), c.twin_temperature)
                    if self.twin_weight else None)  # under DDP over the pairs of the global batch
            inv = invariance_loss(z.float(), z_aug.float()) if self.augmenter else None
            loss = (recon - lam * adv_ce + (0 if twin is None else self.twin_weight * twin)
                    + (0 if inv is None else c.invariance_weight * inv))
            self.opt_ae.zero_grad(set_to_none=True)
            loss.backward()
            if c.grad_clip:
                nn.utils.clip_grad_norm_(self.ae_params, c.grad_clip)
            for g in self.opt_ae.param_groups:
                g["lr"] = self.lr_at(step)
            self.opt_ae.step()
        finally:
            for p in m.adversary.parameters():
                p.requires_grad_(True)
        acc = float(m.adversary_correct(logits.detach().float(), bins).float().mean())
        return {"recon": float(recon.detach()), "adv_loss": float(loss_a.detach()), "adv_ce": float(adv_ce.detach()),
                "adv_acc": acc, "lambda": lam, **({} if twin is None else {"twin": float(twin.detach())}),
                **({} if inv is None else {"invariance": float(inv.detach())})}

    # --- the loop ---------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train to the configured number of epochs (or until stopped); returns the run dir."""
        c = self.config
        out = Path(c.out)
        if self.is_main:
            self.run.write_config(c)
            if self._resumed:
                truncate_metrics(out / runfiles.METRICS, self.progress["step"])
            self.run.start(self.total_steps, resumed=self._resumed)
            self.log("training on %s (%d process%s), %d steps/epoch of %d spectra, %d steps in all",
                     self.device, self.world, "es" if self.world > 1 else "", self.source.steps_per_epoch,
                     self.source.global_batch, self.total_steps)
        self.stop.install()
        try:
            state = self._loop()
        except BaseException as exc:
            self.stop.restore()
            if self.is_main:
                tail = "".join(traceback.format_exception(exc))[-4000:]
                self.run.logger.error("training failed:\n%s", tail)
                self.run.finish("failed", error=tail)
                self.run.close()
            raise
        self.stop.restore()
        if self.is_main:
            if not (self.run.model_dir / runfiles.MODEL_CONFIG).exists():  # no epoch ever improved
                self.model.save_pretrained(self.run.model_dir)
            if state == "done" and self.config.twin_metric == "fit":
                self._fit_twin_metric()
            self.run.finish(state)
            self.log("training %s at step %d", state, self.progress["step"])
            self.run.close()
        if self.world > 1:
            torch.distributed.barrier()
        return out

    def _should_stop(self) -> bool:
        flag = self.stop.requested
        if self.world > 1:  # every rank must leave the loop at the same step
            t = torch.tensor([1.0 if flag else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.all_reduce(t)
            flag = bool(t.item() > 0)
        return flag

    def _loop(self) -> str:
        from tqdm.auto import tqdm

        c, progress = self.config, self.progress
        bar = tqdm(total=self.total_steps, initial=progress["step"], unit="step", dynamic_ncols=True,
                   disable=not (c.progress and self.is_main) or None, mininterval=0.5, desc="train")
        window: dict[str, list[float]] = {}
        t_window = time.time()
        t_start = time.time() - progress["elapsed"]
        try:
            while progress["step"] < self.total_steps:
                epoch = progress["epoch"]
                epoch_sums, epoch_n = 0.0, 0
                self.model.train()
                for batch in self.source.batches(epoch, skip=progress["batch"]):
                    metrics = self.train_step(batch, progress["step"])
                    progress["step"] += 1
                    progress["batch"] += 1
                    epoch_sums += metrics["recon"]
                    epoch_n += 1
                    for k, v in metrics.items():
                        window.setdefault(k, []).append(v)
                    bar.update(1)
                    if self.is_main and (progress["step"] % c.log_every == 0 or progress["step"] == self.total_steps):
                        dt = time.time() - t_window
                        rec = {k: float(np.mean(v)) for k, v in window.items()}
                        rec.update(kind="step", step=progress["step"], epoch=epoch, lr=self.lr_at(progress["step"] - 1),
                                   spectra_per_s=len(window["recon"]) * self.source.global_batch / max(dt, 1e-9),
                                   time=time.time() - t_start)
                        rec["mse_flux"] = rec["recon"] * float(self.model.flux_scale.mean()) ** 2
                        self.run.log_metrics(rec)
                        bar.set_postfix(recon=f"{rec['recon']:.3g}", adv=f"{rec['adv_acc']:.2f}")
                        window, t_window = {}, time.time()
                        self.run.update_status(step=progress["step"], epoch=epoch)
                    if self._should_stop():
                        progress["elapsed"] = time.time() - t_start
                        self._save_checkpoint()
                        if self.is_main and not (self.run.model_dir / runfiles.MODEL_CONFIG).exists():
                            self.model.save_pretrained(self.run.model_dir)
                        self.log("stop requested (%s): checkpoint saved at step %d",
                                 self.stop.signal_name or "signal", progress["step"])
                        return "cancelled"
                    if progress["step"] >= self.total_steps:
                        break
                    if c.checkpoint_every and progress["step"] % c.checkpoint_every == 0:
                        progress["elapsed"] = time.time() - t_start
                        self._save_checkpoint()
                epoch_done = progress["batch"] >= self.source.steps_per_epoch
                if epoch_done:
                    progress["epoch"], progress["batch"] = epoch + 1, 0
                progress["elapsed"] = time.time() - t_start
                self._end_of_epoch(epoch, epoch_sums / max(epoch_n, 1), epoch_done)
        finally:
            bar.close()
        return "done"

    def _fit_twin_metric(self) -> None:
        """Learn the twin metric of the best model (twinviz/twins/metric.py). Any failure is logged
        and the model keeps raw z: the training itself stands and the run still finishes."""
        try:
            from twinviz.bundle.fit import fit_model_twin_metric

            outcome = fit_model_twin_metric(self.run.model_dir, self.config.data, self.config.val,
                                            device=str(self.device), log=self.log)
        except Exception as exc:  # noqa: BLE001 — a metric is optional; a finished training is not
            self.run.logger.warning("twin metric not fitted (%s: %s); the model ranks on raw z",
                                    type(exc).__name__, exc)
            return
        if outcome["status"] == "skipped":
            self.log("twin metric not fitted: %s; the model ranks on raw z", outcome["why"])

    def _write_provenance(self) -> None:
        from twinviz.bundle.provenance import write_training_provenance

        write_training_provenance(self.run.model_dir, self.trained_on,
                                  self.chosen_on if self.val is not None else None, self.keep_latest,
                                  twin_supervision=self.twin_supervision)

    def _end_of_epoch(self, epoch: int, train_recon: float, complete: bool) -> None:
        p = self.progress
        if self.is_main:
            rec = {"kind": "epoch", "epoch": epoch, "step": p["step"], "complete": complete,
                   "train_recon": train_recon, "lambda": self.lambda_at(p["step"]), "time": p["elapsed"]}
            if self.val is not None:
                rec.update(self.val.evaluate(self.model, autocast=self.autocast))
            chosen, previous = (best_epoch_key(r, latest=self.keep_latest) if r else None for r in (rec, p["best"]))
            improved = chosen is not None and (previous is None or chosen[0] != previous[0]
                                               or chosen[1] < previous[1])
            if improved:
                metric = chosen[0]
                p["best_value"] = rec["step"] if metric == "latest" else rec[metric]
                p["best"] = {k: v for k, v in rec.items() if k.startswith("val_") or k == "train_recon"}
                p["best"].update(epoch=epoch, step=p["step"], metric=metric)
                self.model.save_pretrained(self.run.model_dir)
                if self.val is not None:
                    # The per-star validation errors of exactly these weights, beside them.
                    write_validation_stats(self.run.model_dir, self.val.star_mse, source=self.config.val,
                                           epoch=epoch, step=p["step"], data=self.chosen_on)
                self._write_provenance()
            rec["best"] = improved
            self.run.log_metrics(rec)
            self.run.update_status(epoch=p["epoch"], step=p["step"], best=p["best"])
            shown = " ".join(f"{k}={v:.4g}" for k, v in rec.items()
                             if isinstance(v, float) and k not in ("time", "lambda"))
            if "val_adv_at_chance" in rec:
                shown += " adversary " + ("at chance" if rec["val_adv_at_chance"] else "ABOVE chance")
            # Counted from 1, as the Training tab's "epoch N" (epochs completed); metrics.jsonl keeps
            # the 0-based index.
            self.log("epoch %d/%d (step %d): %s%s", epoch + 1, self.config.epochs, p["step"], shown,
                     " [best]" if improved else "")
        self._save_checkpoint()

    def _save_checkpoint(self) -> None:
        if self.is_main:
            save_checkpoint(self.run.checkpoint_dir, self.model,
                            {"ae": self.opt_ae, "adversary": self.opt_adv}, dict(self.progress))
        if self.world > 1:
            torch.distributed.barrier()


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a fader network as configured; returns the run directory (config.out)."""
    return Trainer(config, resume=resume, overwrite=overwrite).fit()
