"""What the app looks at: the shared, read-only data (loaded once per process) and each
session's own selection.

Two layers, kept apart on purpose:

* :class:`AppData` — the model, the spectra, the latents, the twin index and the 2-D
  projections. Loading these is the slow part (seconds), so
  :func:`twinviz.app.loading.load_app_data` caches one
  ``AppData`` per (model, data, latents) paths for the life of the process; every browser
  session and notebook cell shares it and never writes to it.
* :class:`ExplorerState` — what one session is looking at (selected star, slider Teff/logg,
  compared twin, k, colour-by). Views read and write only these parameters; ``layout.py`` hands
  the same ``ExplorerState`` to every view of a session, which is how views talk to each other
  without importing each other.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import param

__all__ = ["AppData", "AppDataError", "ExplorerState", "RANK_LATENT", "RANK_PIXEL"]


RECOVERED_CLUSTER = "recovered cluster"  # colour-by name of the HDBSCAN clusters of z
CLUSTER_MIN_SIZE = 5                     # HDBSCAN min_cluster_size in the app (as `twinviz clusters`)
CLUSTER_MAX_STARS = 20_000               # above this, clustering in a request would take too long
#: How the twin table ranks neighbours (ExplorerState.rank_by): the fader's latent z (in its twin
#: metric when the model has one), or a pixel twin finder (`twinviz fit-pixel-finder`) when the
#: app was started with one.
RANK_LATENT, RANK_PIXEL = "latent", "pixel"
PIXEL_TWIN_RANK = "twin rank (pixel finder)"  # colour-by name of the pixel finder's twin ranks


class AppDataError(RuntimeError):
    """The app cannot start on the given model/data/latents; the message says which file and
    how to fix it (shown to the user as the page's error message)."""


# --------------------------------------------------------------------------------------------
# shared data
# --------------------------------------------------------------------------------------------
@dataclass(eq=False)
class AppData:
    """Everything the views read, shared by all sessions (treat as read-only).

    Arrays are numpy, one row per star in dataset order; a star's *position* (0…N−1) is how the
    app refers to it internally, ``star_ids`` are what users see and type.
    """

    model: object                       # twinviz.model.FaderNetwork (eval mode)
    model_dir: Path | None
    data_path: Path | None
    latents_path: Path | None
    wavelength: np.ndarray              # [P] Å
    segments: tuple                     # ((start, stop), …) chips of the wavelength grid
    flux: np.ndarray                    # [N, P] float32 observed flux; for large files a
                                        # twinviz.spectra.rows.StarRows (one star per read)
    teff: np.ndarray                    # [N] K
    logg: np.ndarray                    # [N] dex
    group: np.ndarray                   # [N] int, −1 unknown
    star_ids: np.ndarray                # [N]
    z: np.ndarray                       # [N, d] float32 latents
    projections: dict                   # name ("umap", "pca") → [N, 2]
    labels: dict                        # colour-by name → [N] float (NaN = unknown)
    fe_h: np.ndarray | None = None      # [N] dex
    x_fe: np.ndarray | None = None      # [N, n_el] dex
    elements: tuple = ()
    attrs: dict = field(default_factory=dict)
    synthesizer: object | None = None   # twinviz.spectra.synth.Synthesizer when the data are synthetic
    mask: np.ndarray | None = None      # [N, P] bool, True = bad pixel (imported survey data); as flux
    flux_err: np.ndarray | None = None  # [N, P] float32 1-σ flux uncertainty
    recon_mse: np.ndarray | None = None  # [N] reconstruction MSE over good pixels (flux units²)
    ood: object | None = None           # twinviz.latents.ood.OODCriteria the stars are judged by
    report_path: Path | None = None     # cached Table-1 report (JSON) of this model on these data
    calibration: object | None = None   # twinviz.twins.confidence.TwinCalibration of the model, if any
    calibration_note: str = ""          # why there is none (e.g. refused: written for other weights)
    z_twin: np.ndarray | None = None    # [N, k] z in the model's twin metric (None: twins ranked on z)
    pixel_finder: object | None = None  # twinviz.evaluation.pixel_finder.PixelTwinFinder, when given
    pixel_z: np.ndarray | None = None   # [N, k] the stars in the pixel finder's twin metric
    bundle: object | None = None        # twinviz.bundle.ModelBundle the model came from
    ranked_on: str = ""                 # what the latent ranking uses, and why (ModelBundle.ranking)
    domain_note: str = ""               # "" or: the model was trained on another domain (ModelBundle.domain_note)
    _index: object | None = None
    _pixel_index: object | None = None
    _pixel_outside: np.ndarray | None = None
    _pixel_ranks: np.ndarray | None = None
    _trees: dict = field(default_factory=dict)
    _ranks: np.ndarray | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _z_torch: object | None = None
    _ood_flags: np.ndarray | None = None
    _clusters: np.ndarray | None = None
    _query_latent: object | None = None
    _query_pixel: object | None = None

    # ---- sizes and lookups ----------------------------------------------------------------
    @property
    def n_stars(self) -> int:
        return int(self.z.shape[0])

    @property
    def search_z(self) -> np.ndarray:
        """The vectors twins are ranked on: z in the model's twin metric, else z."""
        return self.z if self.z_twin is None else self.z_twin

    @property
    def teff_range(self) -> tuple[float, float]:
        return tuple(float(v) for v in self.model.config.teff_range)

    @property
    def logg_range(self) -> tuple[float, float]:
        return tuple(float(v) for v in self.model.config.logg_range)

    @property
    def is_synthetic(self) -> bool:
        """True when the dataset came from the built-in synthesizer (so a truth curve exists)."""
        return self.synthesizer is not None

    @property
    def index(self):
        """The exact L1 :class:`twinviz.twins.index.TwinIndex` over the latents (built on first use)."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    from twinviz.twins.index import TwinIndex
                    self._index = TwinIndex(self.search_z, metric="l1", ids=self.star_ids)
        return self._index

    # ---- how twins are ranked ----------------------------------------------------------------
    @property
    def has_pixel_finder(self) -> bool:
        return self.pixel_z is not None

    def ranking(self, rank_by: str) -> str:
        """The ranking actually used for ``rank_by`` (the pixel finder only when one is loaded)."""
        return RANK_PIXEL if rank_by == RANK_PIXEL and self.has_pixel_finder else RANK_LATENT

    def twin_vectors(self, rank_by: str = RANK_LATENT) -> np.ndarray:
        """[N, k] the vectors twins are ranked on (L1) for ``rank_by``."""
        return self.pixel_z if self.ranking(rank_by) == RANK_PIXEL else self.search_z

    def index_for(self, rank_by: str = RANK_LATENT):
        """The exact L1 index for ``rank_by`` (each built on first use)."""
        if self.ranking(rank_by) == RANK_LATENT:
            return self.index
        if self._pixel_index is None:
            with self._lock:
                if self._pixel_index is None:
                    from twinviz.twins.index import TwinIndex
                    self._pixel_index = TwinIndex(self.pixel_z, metric="l1", ids=self.star_ids)
        return self._pixel_index

    def pixel_outside(self) -> np.ndarray:
        """[N] bool: stars outside the pixel finder's training Teff/logg (its polynomial
        extrapolates there); all False without a finder."""
        if self._pixel_outside is None:
            self._pixel_outside = (np.zeros(self.n_stars, dtype=bool) if self.pixel_finder is None
                                   else self.pixel_finder.outside_training(self.teff, self.logg))
        return self._pixel_outside

    def ranking_name(self, rank_by: str = RANK_LATENT) -> str:
        """Words for the table and titles: what the distances are measured in."""
        if self.ranking(rank_by) == RANK_PIXEL:
            return "pixel finder"
        return "latent z, twin metric" if self.z_twin is not None else "latent z"

    def position_of(self, star_id) -> int:
        """Position of a star from the id a user typed (int ids are matched as ints)."""
        text = str(star_id).strip()
        for candidate in (text, _as_int(text)):
            if candidate is None:
                continue
            hits = np.flatnonzero(self.star_ids == np.asarray(candidate, dtype=self.star_ids.dtype)) \
                if _compatible(candidate, self.star_ids) else np.empty(0, int)
            if hits.size:
                return int(hits[0])
        raise AppDataError(f"star: no star with id {text!r} (ids run from {self.star_ids[0]} to "
                           f"{self.star_ids[-1]}, {self.n_stars} stars). Fix: type an id from the dataset")

    def label_names(self) -> list[str]:
        """Colour-by choices: the dataset's labels, plus twin rank when groups are known and the
        recovered cluster (HDBSCAN on z) up to CLUSTER_MAX_STARS stars."""
        names = list(self.labels)
        if "group size" in self.labels and "twin rank" not in names and (
                self._ranks is not None or self.n_stars <= 200_000):
            names.append("twin rank")
            if self.has_pixel_finder:
                names.append(PIXEL_TWIN_RANK)
        if self.n_stars <= CLUSTER_MAX_STARS:
            names.append(RECOVERED_CLUSTER)
        return names

    def recovered_clusters(self) -> np.ndarray:
        """HDBSCAN cluster of every star on z (−1 noise; twinviz.evaluation.clusters), computed
        on first use, then kept."""
        if self._clusters is None:
            with self._lock:
                if self._clusters is None:
                    from twinviz.evaluation.clusters import find_clusters
                    self._clusters = find_clusters(self.z, min_cluster_size=CLUSTER_MIN_SIZE)
        return self._clusters

    def label_values(self, name: str) -> np.ndarray:
        """Values [N] of a colour-by choice (NaN where unknown)."""
        if name == RECOVERED_CLUSTER:
            found = self.recovered_clusters()
            return np.where(found >= 0, found, np.nan).astype(np.float32)
        if name == PIXEL_TWIN_RANK:
            ranks = self.twin_ranks(RANK_PIXEL).astype(np.float32)
            return np.where(ranks > 0, ranks, np.nan).astype(np.float32)
        if name == "twin rank" and name not in self.labels:
            ranks = self.twin_ranks().astype(np.float32)
            return np.where(ranks > 0, ranks, np.nan).astype(np.float32)
        return self.labels[name]

    # ---- observed spectra ------------------------------------------------------------------
    def bad_pixels(self, position: int) -> np.ndarray:
        """[P] True where the star's flux must not be shown or compared (masked or non-finite)."""
        bad = ~np.isfinite(self.flux[position])
        if self.mask is not None:
            bad |= self.mask[position]
        return bad

    def observed(self, position: int) -> np.ndarray:
        """The star's observed flux [P] with NaN at bad pixels (a plotted line breaks there)."""
        return np.where(self.bad_pixels(position), np.float32(np.nan), self.flux[position])

    def observed_err(self, position: int) -> np.ndarray | None:
        """The star's 1-σ flux uncertainty [P], NaN at bad pixels; None without ``flux_err``."""
        if self.flux_err is None:
            return None
        err = self.flux_err[position]
        return np.where(self.bad_pixels(position) | ~np.isfinite(err), np.float32(np.nan), err)

    # ---- out of distribution ---------------------------------------------------------------
    def ood_flags(self) -> np.ndarray:
        """[N] bool: stars the model cannot speak for (twinviz.latents.ood); all False when
        no criteria are loaded."""
        if self._ood_flags is None:
            if self.ood is None:
                self._ood_flags = np.zeros(self.n_stars, dtype=bool)
            else:
                self._ood_flags = self.ood.flags(self.teff, self.logg, self.recon_mse)["ood"]
        return self._ood_flags

    def ood_text(self, position: int) -> str:
        """Why the star is out of distribution, with its numbers ("" when it is not)."""
        if self.ood is None:
            return ""
        recon = None if self.recon_mse is None else float(self.recon_mse[position])
        return self.ood.describe(float(self.teff[position]), float(self.logg[position]), recon)

    # ---- model and truth ---------------------------------------------------------------------
    def decode(self, position: int, teff: float, logg: float) -> np.ndarray:
        """D(z_star, u): the decoder's spectrum [P] for the star at ``position`` at (Teff K, logg dex)."""
        import torch

        if self._z_torch is None:
            self._z_torch = torch.from_numpy(np.ascontiguousarray(self.z, dtype=np.float32))
        with torch.inference_mode():
            out = self.model.decode(self._z_torch[position:position + 1],
                                    torch.tensor([teff], dtype=torch.float32),
                                    torch.tensor([logg], dtype=torch.float32))
        return out[0].numpy().astype(np.float32, copy=False)

    def truth(self, position: int, teff: float, logg: float) -> np.ndarray | None:
        """The synthesizer's spectrum [P] for the star's own chemistry at (Teff, logg), or None
        when the data did not come from the built-in synthesizer."""
        if self.synthesizer is None or self.fe_h is None:
            return None
        x_fe = {} if self.x_fe is None else dict(zip(self.elements, (float(v) for v in self.x_fe[position])))
        return np.asarray(self.synthesizer.spectrum(float(teff), float(logg), float(self.fe_h[position]), x_fe),
                          dtype=np.float32)

    # ---- twins -------------------------------------------------------------------------
    def twin_query(self, rank_by: str = RANK_LATENT):
        """The :class:`~twinviz.twins.query.TwinQuery` of ``rank_by`` over these stars — the service
        `twinviz twins` prints — sharing this AppData's index (built once per ranking)."""
        ranked = self.ranking(rank_by)
        key = "_query_" + ranked
        if getattr(self, key, None) is None:
            with self._lock:
                from twinviz.app.twin_query import build_twin_query

                setattr(self, key, build_twin_query(self, ranked == RANK_PIXEL))
        return getattr(self, key)

    def neighbours(self, position: int, k: int, rank_by: str = RANK_LATENT) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest stars to ``position`` in L1 (positions, distances): in latent space, or
        in the pixel finder's metric with ``rank_by=RANK_PIXEL``."""
        return self.index_for(rank_by).search(int(position), int(k))

    def true_twin(self, position: int, rank_by: str = RANK_LATENT) -> int:
        """Position of the star's nearest group-mate (for ``rank_by``'s distances; −1 when unknown)."""
        if self.group[position] < 0:
            return -1
        return self.index_for(rank_by).twin_of(self.group, int(position))[0]

    def twin_ranks(self, rank_by: str = RANK_LATENT) -> np.ndarray:
        """Twin rank of every star (−1 without a group-mate); computed once (O(N²)), then kept.
        ``rank_by=RANK_PIXEL``: the ranks in the pixel finder's metric (when one is loaded)."""
        if self.ranking(rank_by) == RANK_PIXEL:
            if self._pixel_ranks is None:
                with self._lock:
                    if self._pixel_ranks is None:
                        self._pixel_ranks = self.index_for(RANK_PIXEL).twin_ranks(self.group)
            return self._pixel_ranks
        if self._ranks is None:
            with self._lock:
                if self._ranks is None:
                    if "twin rank" in self.labels:
                        r = self.labels["twin rank"]
                        self._ranks = np.where(np.isfinite(r), r, -1).astype(np.int64)
                    else:
                        self._ranks = self.index.twin_ranks(self.group)
        return self._ranks

    def nearest_in_projection(self, projection: str, x: float, y: float) -> int:
        """Position of the star closest to (x, y) on a 2-D map (KD-tree, built once per map)."""
        tree = self._trees.get(projection)
        if tree is None:
            from scipy.spatial import cKDTree

            with self._lock:
                tree = self._trees.get(projection) or cKDTree(self.projections[projection])
                self._trees[projection] = tree
        return int(tree.query([x, y])[1])


def _as_int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _compatible(value, ids) -> bool:
    if isinstance(value, int):
        return np.issubdtype(ids.dtype, np.integer)
    return not np.issubdtype(ids.dtype, np.number)


# --------------------------------------------------------------------------------------------
# per-session state
# --------------------------------------------------------------------------------------------
class ExplorerState(param.Parameterized):
    """One session's selection. Views watch these parameters; the URL mirrors some of them."""

    star = param.Integer(default=0, bounds=(0, None), doc="position of the selected star")
    teff = param.Number(default=4750.0, doc="slider Teff (K) fed to the decoder")
    logg = param.Number(default=2.25, doc="slider logg (dex) fed to the decoder")
    twin = param.Integer(default=-1, doc="position of the star compared with the selected one "
                                         "(−1: its true twin when known, else its nearest neighbour)")
    k = param.Integer(default=10, bounds=(1, 200), doc="number of neighbours listed")
    colour_by = param.String(default="Teff", doc="label colouring the latent map")
    projection = param.Selector(default="pca", objects=["pca", "umap"],
                                doc="2-D map shown: one of the data's projections (umap, pca)")
    rank_by = param.Selector(default=RANK_LATENT, objects=[RANK_LATENT, RANK_PIXEL],
                             doc="how the twin table ranks: the fader's latent z, or the pixel finder "
                                 "(when the app has one; otherwise latent z)")

    def __init__(self, data: AppData, **params):
        self.data = data
        params.setdefault("projection", "umap" if "umap" in data.projections else next(iter(data.projections)))
        super().__init__(**params)
        self.param.projection.objects = list(data.projections)  # what a permalink may ask for
        if self.projection not in data.projections:
            self.projection = next(iter(data.projections))
        self.param.star.bounds = (0, data.n_stars - 1)
        self.param.teff.bounds = data.teff_range
        self.param.logg.bounds = data.logg_range
        if "teff" not in params and "logg" not in params:
            self._reset_sliders()
        # One watcher for the three, so a batched update (the URL restoring star, teff and logg
        # together) keeps the URL's slider values instead of resetting them to the star's.
        # "twin" is watched too, so that a permalink's twin, set with its star, is kept.
        self.param.watch(self._on_selection, ["star", "teff", "logg", "twin"])
        self.param.watch(self._on_ranking, ["rank_by"])

    def _reset_sliders(self):
        lo, hi = self.data.teff_range
        self.teff = float(np.clip(self.data.teff[self.star], lo, hi))
        lo, hi = self.data.logg_range
        self.logg = float(np.clip(self.data.logg[self.star], lo, hi))

    def _on_selection(self, *events):
        names = {e.name for e in events}
        if "star" in names:
            if not names & {"teff", "logg"}:
                self._reset_sliders()
            if "twin" not in names:
                self.twin = -1

    def _on_ranking(self, event):
        self.twin = -1  # compare with the first twin of the new ranking

    # ---- derived, cheap --------------------------------------------------------------------
    @property
    def star_id(self):
        return self.data.star_ids[self.star].item()

    def compared_twin(self) -> int:
        """The star compared with the selected one (explicit choice, true twin, else rank 1 of the
        session's ranking)."""
        if self.twin >= 0 and self.twin != self.star:
            return self.twin
        mate = self.data.true_twin(self.star, self.rank_by)
        if mate >= 0:
            return mate
        return int(self.data.neighbours(self.star, 1, self.rank_by)[0][0])

    def select_star_id(self, star_id) -> None:
        """Select by the id a user typed; raises AppDataError for an unknown id."""
        self.star = self.data.position_of(star_id)
