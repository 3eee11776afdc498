"""The fader network of de Mijolla, Ness & Viti (2019): E(x,u)→z, D(z,u)→x̂, A(z)→bins of u.

u = (Teff [K], logg [dex]), scaled to [-1, 1]. Encoder and decoder are label-conditioned MLPs
(u enters every layer) between a linear flux↔basis layer pair (PCA-initialised, frozen by
default) and z. The model owns its normalisation — flux offset/scale, an optional per-pixel
polynomial in u subtracted first (``residual_degree``), label ranges, adversary bins, grid id —
fixed when training starts and saved with the weights (docs/model.md)."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from twinviz import files as runfiles
from twinviz.atomic import file_sha256
from twinviz.layers import CONV_FEATURES, ConvFrontEnd, LabelMLP, label_powers
from twinviz.options import Architecture, check_options

__all__ = ["FaderNetwork", "ModelConfig", "ModelError", "encode_arrays", "file_sha256", "MODEL_FORMAT_VERSION"]

MODEL_FORMAT_VERSION = 1
WEIGHTS_FILE, CONFIG_FILE = runfiles.MODEL_WEIGHTS, runfiles.MODEL_CONFIG
#: Files beside the weights that belong to them (twinviz.bundle): removed when new weights are saved.
SIDECARS = (runfiles.TWIN_METRIC_CONFIG, runfiles.TWIN_METRIC_WEIGHTS, runfiles.MODEL_CALIBRATION,
            runfiles.MODEL_VALIDATION_STATS, runfiles.MODEL_PROVENANCE)


class ModelError(ValueError):
    """A model that cannot be built, loaded or used with the data it is handed; the message
    names the file or field and how to fix it."""


@dataclass(kw_only=True)
class ModelConfig(Architecture):
    """Everything that defines a fader network besides its weights (saved as config.json).

    The architecture options — latent_dim, basis_dim, basis_trainable, basis_whiten, conv_channels,
    hidden, adversary_hidden, activation, adversary_mode, flux_scaling — are declared (with their
    help, choices and bounds) once in :class:`twinviz.options.Architecture`, shared with
    ``TrainConfig``. In a model, ``flux_scaling`` only records how ``flux_offset``/``flux_scale``
    were set. The rest are fixed from the training data when training starts:

    Attributes
    ----------
    n_pixels : number of flux pixels of the grid the model was trained on
    grid_id : wavelength-grid id (``twinviz.spectra.grid.grid_id``) of that grid
    teff_range, logg_range : (min, max) in K and dex mapped to [-1, 1] before entering the nets
    teff_bin_edges, logg_bin_edges : adversary bin edges in K and dex (n_bins + 1 values;
        values beyond the outer edges fall into the outer bins)
    """

    n_pixels: int
    grid_id: str = "unknown"
    teff_range: list[float] = field(default_factory=lambda: [4000.0, 5500.0])
    logg_range: list[float] = field(default_factory=lambda: [1.0, 3.5])
    teff_bin_edges: list[float] = field(default_factory=lambda: list(np.linspace(4000.0, 5500.0, 6)))
    logg_bin_edges: list[float] = field(default_factory=lambda: list(np.linspace(1.0, 3.5, 6)))

    def __post_init__(self):
        super().__post_init__()
        self.teff_range = [float(v) for v in self.teff_range]
        self.logg_range = [float(v) for v in self.logg_range]
        self.teff_bin_edges = [float(v) for v in self.teff_bin_edges]
        self.logg_bin_edges = [float(v) for v in self.logg_bin_edges]
        problems = []
        if self.n_pixels < 1:
            problems.append(f"n_pixels={self.n_pixels} must be ≥ 1")
        # latent_dim, basis_dim, activation, adversary_mode, flux_scaling: their declared bounds
        problems += check_options(self, Architecture)
        if not self.hidden or min(self.hidden) < 1:
            problems.append(f"hidden={self.hidden} needs at least one positive width")
        for name in ("teff_range", "logg_range"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not lo_hi[1] > lo_hi[0]:
                problems.append(f"{name}={lo_hi} must be [min, max] with max > min")
        for name in ("teff_bin_edges", "logg_bin_edges"):
            edges = getattr(self, name)
            if len(edges) < 2 or np.any(np.diff(edges) <= 0):
                problems.append(f"{name} must hold ≥ 2 strictly increasing values")
        if problems:
            raise ModelError("invalid model config: " + "; ".join(problems))

    @property
    def n_teff_bins(self) -> int:
        return len(self.teff_bin_edges) - 1

    @property
    def n_logg_bins(self) -> int:
        return len(self.logg_bin_edges) - 1

    @property
    def n_classes(self) -> int:
        """Output size of the adversary (joint: product of bins; separate: sum)."""
        if self.adversary_mode == "joint":
            return self.n_teff_bins * self.n_logg_bins
        return self.n_teff_bins + self.n_logg_bins

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = {"residual_degree": 0, **data}  # written before the option existed: no residual
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"model config has unknown fields {unknown}; it was written by a newer "
                             "twinviz. Fix: upgrade twinviz")
        return cls(**data)


class FaderNetwork(nn.Module):
    """Conditional encoder E(x,u)→z, conditional decoder D(z,u)→x̂ and latent adversary A(z).

    All public methods take flux in dataset units (continuum-normalised) of shape
    [batch, n_pixels], Teff in K and logg in dex of shape [batch].
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = c = config
        p = c.n_pixels
        self.register_buffer("flux_offset", torch.zeros(p))
        self.register_buffer("flux_scale", torch.ones(p))
        if c.residual_degree:  # per-pixel polynomial in u of the normalised training flux
            self.register_buffer("label_mean", torch.zeros(len(label_powers(c.residual_degree)), p))
        first = c.basis_dim if c.basis_dim else p
        if c.basis_dim:
            # No bias: the per-pixel mean already sits in flux_offset.
            self.to_basis = nn.Linear(p, c.basis_dim, bias=False)
            self.from_basis = nn.Linear(c.basis_dim, p, bias=False)
            self.register_buffer("basis_scale", torch.ones(c.basis_dim))
            if not c.basis_trainable:
                self.to_basis.weight.requires_grad_(False)
                self.from_basis.weight.requires_grad_(False)
        # The convolutional front end, when on, adds its features to the encoder's input only:
        # the decoder still ends in the basis (or pixels), so the loss is unchanged.
        self.conv = ConvFrontEnd(p, c.conv_channels, c.activation) if c.conv_channels else None
        width_in = first + (CONV_FEATURES if c.conv_channels else 0)
        self.encoder = LabelMLP([width_in, *c.hidden, c.latent_dim], c.activation)
        self.decoder = LabelMLP([c.latent_dim, *reversed(c.hidden), first], c.activation)
        # The adversary sees z only: it must predict u from it.
        self.adversary = LabelMLP([c.latent_dim, *c.adversary_hidden, c.n_classes], c.activation, n_cond=0)
        self.register_buffer("_teff_edges", torch.tensor(c.teff_bin_edges[1:-1], dtype=torch.float32))
        self.register_buffer("_logg_edges", torch.tensor(c.logg_bin_edges[1:-1], dtype=torch.float32))

    # --- normalisation -------------------------------------------------------------------
    def set_flux_normalisation(self, offset, scale) -> None:
        """Fix the flux normalisation (dataset units → network units: (flux − offset) / scale).

        offset, scale: per-pixel arrays of length n_pixels (scale may be a scalar).
        """
        offset = torch.as_tensor(np.asarray(offset, dtype=np.float32)).reshape(-1)
        scale = torch.as_tensor(np.asarray(scale, dtype=np.float32)).reshape(-1).expand(self.config.n_pixels)
        if offset.numel() != self.config.n_pixels:
            raise ModelError(f"flux offset has {offset.numel()} values, model has {self.config.n_pixels} pixels")
        if not torch.all(scale > 0):
            raise ModelError("flux scale must be > 0 everywhere")
        self.flux_offset.copy_(offset)
        self.flux_scale.copy_(scale)

    def init_basis(self, components, coefficient_std=None) -> None:
        """Initialise the flux↔basis layers from orthonormal components [k, n_pixels]
        (the leading principal components of the normalised training flux), and the whitening
        scale from the coefficients' standard deviations [k]. Rows beyond k stay zero."""
        if not self.config.basis_dim:
            return
        comp = torch.as_tensor(np.asarray(components, dtype=np.float32))
        k = min(comp.shape[0], self.config.basis_dim)
        with torch.no_grad():
            self.to_basis.weight.zero_()
            self.from_basis.weight.zero_()
            self.to_basis.weight[:k].copy_(comp[:k])
            self.from_basis.weight[:, :k].copy_(comp[:k].T)
            if coefficient_std is not None and self.config.basis_whiten:
                std = torch.as_tensor(np.asarray(coefficient_std, dtype=np.float32))[:k]
                # Floor: a component with (almost) no training variance must not be blown up.
                self.basis_scale[:k].copy_(std.clamp_min(1e-6 * float(std.max())))

    def set_label_mean(self, coefficients) -> None:
        """Fix the per-pixel polynomial in u: [terms, n_pixels], normalised units, :meth:`label_terms` order."""
        coef = torch.as_tensor(np.asarray(coefficients, dtype=np.float32))
        if not self.config.residual_degree or coef.shape != self.label_mean.shape:
            raise ModelError(f"label-mean coefficients of shape {tuple(coef.shape)} do not fit this model")
        self.label_mean.copy_(coef)

    def label_terms(self, u: torch.Tensor) -> torch.Tensor:
        """The polynomial's terms tⁱgʲ (i + j ≤ ``residual_degree``) of scaled labels u [B, 2] → [B, terms]."""
        return torch.cat([u[:, :1] ** i * u[:, 1:] ** j for i, j in label_powers(self.config.residual_degree)], 1)

    def label_mean_flux(self, u: torch.Tensor | None) -> torch.Tensor | float:
        """The polynomial's normalised flux at scaled labels u [B, 2] → [B, P] (0 without one)."""
        if not self.config.residual_degree:
            return 0.0
        if u is None:
            raise ModelError("this model subtracts a polynomial in (Teff, logg) from the flux: pass u")
        return self.label_terms(u.float()) @ self.label_mean

    def normalise_flux(self, flux: torch.Tensor, mask: torch.Tensor | None = None,
                       u: torch.Tensor | None = None) -> torch.Tensor:
        """Dataset flux → network units, (flux − offset) / scale less the polynomial in the scaled
        labels u (``residual_degree`` > 0; u required). Masked or non-finite pixels become 0 (the
        training mean or the polynomial), so a bad pixel carries no information into the encoder."""
        x = (flux.to(self.flux_offset.dtype) - self.flux_offset) / self.flux_scale - self.label_mean_flux(u)
        bad = ~torch.isfinite(x)
        if mask is not None:
            bad = bad | mask.to(torch.bool)
        return torch.where(bad, torch.zeros((), dtype=x.dtype, device=x.device), x)

    def denormalise_flux(self, x: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
        """Network units → dataset flux (u as in :meth:`normalise_flux`)."""
        return (x.float() + self.label_mean_flux(u)) * self.flux_scale + self.flux_offset

    def scale_labels(self, teff: torch.Tensor, logg: torch.Tensor) -> torch.Tensor:
        """(Teff K, logg dex) → u in [-1, 1]² using the model's fixed label ranges; [B, 2]."""
        t0, t1 = self.config.teff_range
        g0, g1 = self.config.logg_range
        device = self.flux_offset.device
        teff = torch.as_tensor(teff, dtype=torch.float32, device=device).reshape(-1)
        logg = torch.as_tensor(logg, dtype=torch.float32, device=device).reshape(-1)
        return torch.stack([2 * (teff - t0) / (t1 - t0) - 1, 2 * (logg - g0) / (g1 - g0) - 1], dim=1)

    def label_bins(self, teff: torch.Tensor, logg: torch.Tensor) -> torch.Tensor:
        """Discretised labels the adversary predicts.

        joint: [B] class index teff_bin * n_logg_bins + logg_bin;
        separate: [B, 2] (teff_bin, logg_bin).
        """
        device = self.flux_offset.device
        tb = torch.bucketize(torch.as_tensor(teff, dtype=torch.float32, device=device).reshape(-1), self._teff_edges)
        gb = torch.bucketize(torch.as_tensor(logg, dtype=torch.float32, device=device).reshape(-1), self._logg_edges)
        if self.config.adversary_mode == "joint":
            return tb * self.config.n_logg_bins + gb
        return torch.stack([tb, gb], dim=1)

    # --- the three networks ---------------------------------------------------------------
    def encode_normalised(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """E on network units: x [B, P] normalised flux, u [B, 2] scaled labels → z [B, latent]."""
        if self.config.basis_dim:
            h = self.to_basis(x)
            h = h / self.basis_scale.to(h.dtype)
        else:
            h = x
        if self.conv is not None:
            h = torch.cat([h, self.conv(x)], dim=1)
        return self.encoder(h, u)

    def encode_basis(self, coef: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """E from basis coefficients ``to_basis(x_n)`` [B, basis_dim] (what the trainer
        precomputes when the basis is frozen) → z [B, latent]. Not for a model with a
        convolutional front end, whose encoder also needs the pixels."""
        if self.conv is not None:
            raise ModelError("this model's encoder has a convolutional front end: encode the flux "
                             "(encode_normalised), not basis coefficients")
        return self.encoder(coef / self.basis_scale.to(coef.dtype), u)

    def decode_basis(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """D up to the basis: z [B, latent], u [B, 2] → coefficients [B, basis_dim] (or, with
        no basis, normalised flux [B, P]). The network predicts whitened coefficients, scaled
        back here, so its outputs are all of order one."""
        h = self.decoder(z, u)
        return h * self.basis_scale.to(h.dtype) if self.config.basis_dim else h

    def decode_normalised(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """D on network units: z [B, latent], u [B, 2] → normalised flux [B, P]."""
        h = self.decode_basis(z, u)
        return self.from_basis(h) if self.config.basis_dim else h

    def adversary_logits(self, z: torch.Tensor) -> torch.Tensor:
        """A(z): logits [B, n_classes] (separate mode: Teff-bin logits then logg-bin logits)."""
        return self.adversary(z)

    def adversary_loss(self, logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the adversary (mean over the batch; separate mode sums both heads)."""
        logits = logits.float()
        if self.config.adversary_mode == "joint":
            return nn.functional.cross_entropy(logits, bins)
        nt = self.config.n_teff_bins
        return (nn.functional.cross_entropy(logits[:, :nt], bins[:, 0])
                + nn.functional.cross_entropy(logits[:, nt:], bins[:, 1]))

    def adversary_correct(self, logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """Per-star correctness [B] (separate mode: both heads right)."""
        if self.config.adversary_mode == "joint":
            return logits.argmax(1) == bins
        nt = self.config.n_teff_bins
        return (logits[:, :nt].argmax(1) == bins[:, 0]) & (logits[:, nt:].argmax(1) == bins[:, 1])

    def encode(self, flux: torch.Tensor, teff: torch.Tensor, logg: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """z = E(x, u): flux [B, P] in dataset units, Teff [B] K, logg [B] dex → [B, latent_dim]."""
        u = self.scale_labels(teff, logg)
        return self.encode_normalised(self.normalise_flux(flux, mask, u), u)

    def decode(self, z: torch.Tensor, teff: torch.Tensor, logg: torch.Tensor) -> torch.Tensor:
        """x̂ = D(z, u): z [B, latent_dim], Teff [B] K, logg [B] dex → flux [B, P] in dataset units."""
        u = self.scale_labels(teff, logg)
        return self.denormalise_flux(self.decode_normalised(z, u), u)

    def forward(self, flux, teff, logg, mask=None):
        """Reconstruction D(E(x,u),u) in dataset units."""
        return self.decode(self.encode(flux, teff, logg, mask), teff, logg)

    # --- grid check -----------------------------------------------------------------------
    def check_grid(self, wavelength_or_dataset) -> None:
        """Raise :class:`ModelError` unless the wavelengths (Å array, or a dataset with a
        ``wavelength`` coordinate) are the grid this model was trained on."""
        from twinviz.spectra.grid import grid_mismatch

        problem = grid_mismatch(wavelength_or_dataset, self.config.grid_id, self.config.n_pixels, "the model")
        if problem:
            raise ModelError(problem)

    # --- saving / loading -----------------------------------------------------------------
    def save_pretrained(self, directory) -> Path:
        """Write ``model.safetensors`` + ``config.json`` into ``directory`` atomically (temporary
        names moved into place); ``config.json`` records the weights' SHA-256, which
        :meth:`from_pretrained` checks. Sidecars of earlier weights (twin metric, calibration,
        validation stats, provenance) are removed. Returns the directory."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        meta = {"format": "twinviz-fader", "format_version": str(MODEL_FORMAT_VERSION)}
        config = {"format": "twinviz-fader", "format_version": MODEL_FORMAT_VERSION, **self.config.to_dict()}
        from twinviz.atomic import temporary_sibling

        tmp_w = temporary_sibling(directory / WEIGHTS_FILE)
        tmp_c = temporary_sibling(directory / CONFIG_FILE)
        try:
            save_file(tensors, str(tmp_w), metadata=meta)
            config["weights_sha256"] = file_sha256(tmp_w)
            tmp_c.write_text(json.dumps(config, indent=2) + "\n")
            for name in SIDECARS:  # before the new weights land: never a sidecar beside wrong weights
                (directory / name).unlink(missing_ok=True)
            # Weights first: a config.json always has matching weights beside it.
            os.replace(tmp_w, directory / WEIGHTS_FILE)
            os.replace(tmp_c, directory / CONFIG_FILE)
        finally:
            for t in (tmp_w, tmp_c):
                if t.exists():
                    t.unlink()
        return directory

    @classmethod
    def from_pretrained(cls, directory, device="cpu") -> "FaderNetwork":
        """Load a model written by :meth:`save_pretrained` (no pickle). Raises :class:`ModelError`
        for a missing, corrupt or truncated file."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        directory = Path(directory)
        cfg_path, w_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (cfg_path, w_path):
            if not path.is_file():
                raise ModelError(f"{path}: missing. Fix: point at a directory written by "
                                 "FaderNetwork.save_pretrained (e.g. runs/NAME/model)")
        try:
            data = json.loads(cfg_path.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"{cfg_path}: corrupt model config ({exc}). Fix: re-save or retrain the model") from exc
        if data.pop("format", None) != "twinviz-fader":
            raise ModelError(f"{cfg_path}: not a twinviz fader-network config (no 'format': 'twinviz-fader')")
        version = data.pop("format_version", None)
        recorded = data.pop("weights_sha256", None)
        if version != MODEL_FORMAT_VERSION:
            raise ModelError(f"{cfg_path}: model format version {version}, this twinviz reads "
                             f"{MODEL_FORMAT_VERSION}. Fix: use the matching twinviz version")
        try:
            config = ModelConfig.from_dict(data)
        except TypeError as exc:
            raise ModelError(f"{cfg_path}: invalid model config ({exc})") from exc
        except ModelError as exc:
            raise ModelError(f"{cfg_path}: {exc}") from exc
        if recorded is not None and file_sha256(w_path) != recorded:
            raise ModelError(f"{w_path}: corrupt or truncated weights file: its SHA-256 does not match the "
                             f"weights_sha256 recorded in {cfg_path.name} (damaged or replaced). Fix: restore the "
                             "model directory from its source, or retrain (twinviz train)")
        try:
            tensors = load_file(str(w_path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{w_path}: corrupt or truncated weights file ({exc}). Fix: re-save or "
                             "retrain the model") from exc
        model = cls(config)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{w_path}: weights do not match {cfg_path.name} ({exc})") from exc
        model.eval()
        model.weights_sha256 = recorded or file_sha256(w_path)
        return model.to(device)

    @property
    def device(self) -> torch.device:
        return self.flux_offset.device


@torch.no_grad()
def encode_arrays(model: FaderNetwork, flux, teff, logg, batch_size: int = 1024, mask=None) -> np.ndarray:
    """Encode numpy (or dask/xarray) arrays in chunks without gradients.

    flux [N, P] dataset units, teff [N] K, logg [N] dex, optional mask [N, P] (True = bad)
    → latents as a float32 numpy array [N, latent_dim]. Runs on the model's device.
    """
    n = len(teff)
    out = np.empty((n, model.config.latent_dim), dtype=np.float32)
    was_training = model.training
    model.eval()
    device = model.device
    teff = np.asarray(teff, dtype=np.float32)
    logg = np.asarray(logg, dtype=np.float32)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        x = torch.as_tensor(np.asarray(flux[start:stop], dtype=np.float32), device=device)
        m = None if mask is None else torch.as_tensor(np.asarray(mask[start:stop], dtype=bool), device=device)
        z = model.encode(x, torch.as_tensor(teff[start:stop], device=device),
                         torch.as_tensor(logg[start:stop], device=device), m)
        out[start:stop] = z.float().cpu().numpy()
    model.train(was_training)
    return out
