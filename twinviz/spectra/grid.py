"""APOGEE wavelength grids.

The APOGEE apStar spectra live on a grid that is uniform in log10(λ):
λ_i = 10**(4.179 + 6e-6 * i) Å (vacuum), i = 0 … 8574. ASPCAP analyses keep only
the pixels that fall on the three detector chips; two conventions are common:

* ``apogee-aspcap-dr12`` (default): pixels [322, 3242) ∪ [3648, 6048) ∪ [6412, 8306),
  7214 pixels, the grid of The Cannon and The Payne;
* ``apogee-aspcap-dr17``: pixels [246, 3274) ∪ [3585, 6080) ∪ [6344, 8335), 7514 pixels.

Every grid has a stable string id that models store and compare; arbitrary user
grids get ``custom-<hash>`` ids computed from their wavelengths.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

__all__ = ["grid_mismatch", 
    "APSTAR_NPIX",
    "DEFAULT_GRID",
    "GRID_NAMES",
    "WavelengthGrid",
    "apstar_wavelength",
    "get_grid",
    "grid_id",
    "identify_grid",
]

APSTAR_NPIX = 8575
LOG10_LAMBDA0 = 4.179
DLOG10_LAMBDA = 6e-6
RESOLUTION = 22_500  # APOGEE resolving power R = λ/FWHM

_CHIP_RANGES = {
    "apogee-apstar": ((0, APSTAR_NPIX),),
    "apogee-aspcap-dr12": ((322, 3242), (3648, 6048), (6412, 8306)),
    "apogee-aspcap-dr17": ((246, 3274), (3585, 6080), (6344, 8335)),
}
GRID_NAMES = tuple(_CHIP_RANGES)
DEFAULT_GRID = "apogee-aspcap-dr12"

# Short aliases people type on the command line.
_ALIASES = {"apstar": "apogee-apstar", "dr12": "apogee-aspcap-dr12", "aspcap": "apogee-aspcap-dr12",
            "dr16": "apogee-aspcap-dr17", "dr17": "apogee-aspcap-dr17"}


def apstar_wavelength() -> np.ndarray:
    """The full 8575-pixel apStar grid: vacuum wavelengths in Å (float64)."""
    return 10.0 ** (LOG10_LAMBDA0 + DLOG10_LAMBDA * np.arange(APSTAR_NPIX, dtype=np.float64))


@dataclass(frozen=True, eq=False)
class WavelengthGrid:
    """A named wavelength grid.

    Attributes
    ----------
    id : stable identifier (``apogee-aspcap-dr12``, ``custom-<hash>``…)
    wavelength : vacuum wavelengths in Å, strictly increasing (float64)
    pixels : for APOGEE grids, the indices of these pixels in the apStar grid, else None
    segments : ``(start, stop)`` index ranges of contiguous pixels in *this* grid
        (the detector chips); plots draw a gap between segments.
    """

    id: str
    wavelength: np.ndarray = field(repr=False)
    pixels: np.ndarray | None = field(default=None, repr=False)
    segments: tuple[tuple[int, int], ...] = ()

    @property
    def n_pixels(self) -> int:
        return int(self.wavelength.size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WavelengthGrid) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


@lru_cache(maxsize=None)
def _apogee_grid(name: str) -> WavelengthGrid:
    ranges = _CHIP_RANGES[name]
    pixels = np.concatenate([np.arange(a, b) for a, b in ranges])
    wave = apstar_wavelength()[pixels]
    segments, start = [], 0
    for a, b in ranges:
        segments.append((start, start + b - a))
        start += b - a
    wave.setflags(write=False)
    pixels.setflags(write=False)
    return WavelengthGrid(name, wave, pixels, tuple(segments))


def get_grid(name: str | WavelengthGrid = DEFAULT_GRID) -> WavelengthGrid:
    """Return a known grid by name (``apogee-apstar``, ``apogee-aspcap-dr12``,
    ``apogee-aspcap-dr17``, or the aliases ``apstar``, ``dr12``, ``dr17``)."""
    if isinstance(name, WavelengthGrid):
        return name
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in _CHIP_RANGES:
        raise ValueError(f"unknown wavelength grid {name!r}; known grids: {', '.join(GRID_NAMES)}")
    return _apogee_grid(key)


def _segments_of(wave: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Split a grid where the log-step jumps (chip gaps) to find contiguous segments."""
    if wave.size < 3:
        return ((0, int(wave.size)),)
    dlog = np.diff(np.log10(wave))
    typical = np.median(dlog)
    breaks = np.flatnonzero(dlog > 3 * typical) + 1
    edges = [0, *breaks.tolist(), int(wave.size)]
    return tuple((edges[i], edges[i + 1]) for i in range(len(edges) - 1))


def identify_grid(wavelength) -> WavelengthGrid:
    """Recognise a wavelength array (Å) as one of the known grids, or wrap it as a custom grid.

    Known grids match to 1e-6 relative precision (so float32-stored files still match).
    """
    wave = np.asarray(wavelength, dtype=np.float64)
    for name in GRID_NAMES:
        g = get_grid(name)
        if wave.shape == g.wavelength.shape and np.allclose(wave, g.wavelength, rtol=1e-6, atol=0):
            return g
    digest = hashlib.sha1(np.round(wave, 4).tobytes()).hexdigest()[:12]
    wave = wave.copy()
    wave.setflags(write=False)
    return WavelengthGrid(f"custom-{digest}", wave, None, _segments_of(wave))


def grid_id(wavelength) -> str:
    """The stable id of the grid a wavelength array (Å) is on (see :func:`identify_grid`)."""
    return identify_grid(wavelength).id


def grid_mismatch(wavelength_or_dataset, expected_id: str, n_pixels: int, what: str) -> str | None:
    """None when the wavelengths (Å array, or a dataset with a ``wavelength`` coordinate) are grid
    ``expected_id`` with ``n_pixels`` pixels, else the message that says so and how to fix it
    (``what`` names whose grid it is, e.g. "the model")."""
    obj, where = wavelength_or_dataset, ""
    if hasattr(obj, "coords") and "wavelength" in getattr(obj, "coords", {}):
        where = f" of {obj.encoding.get('source', 'the dataset')}"
        obj = obj["wavelength"].values
    wave = np.asarray(obj, dtype=np.float64).reshape(-1)
    found = identify_grid(wave)
    if found.id == expected_id and wave.size == n_pixels:
        return None
    return (f"wavelength grid mismatch: {what} was trained on grid '{expected_id}' ({n_pixels} px) but the "
            f"wavelengths{where} are grid '{found.id}' ({wave.size} px). Fix: resample the spectra onto "
            f"'{expected_id}' or use a model trained on this grid")
