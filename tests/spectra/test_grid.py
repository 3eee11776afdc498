"""The APOGEE wavelength grids (docs/science.md, The APOGEE wavelength grid)."""
import numpy as np
import pytest

from twinviz.spectra.grid import (APSTAR_NPIX, DEFAULT_GRID, apstar_wavelength, get_grid, grid_id,
                                  identify_grid)


def test_apstar_grid_is_log_uniform_with_known_ends():
    wave = apstar_wavelength()
    assert wave.size == APSTAR_NPIX == 8575
    assert wave[0] == pytest.approx(15100.8, abs=0.1)
    assert wave[-1] == pytest.approx(16999.8, abs=0.1)
    assert np.allclose(np.diff(np.log10(wave)), 6e-6)


@pytest.mark.parametrize("name, npix, first, last", [
    ("apogee-aspcap-dr12", 7214, 15168.1, 16936.7),
    ("apogee-aspcap-dr17", 7514, None, None),
    ("apogee-apstar", 8575, 15100.8, 16999.8),
])
def test_aspcap_subsets_have_the_documented_pixel_counts(name, npix, first, last):
    g = get_grid(name)
    assert g.n_pixels == npix
    assert sum(b - a for a, b in g.segments) == npix
    if first:
        assert g.wavelength[0] == pytest.approx(first, abs=0.1)
        assert g.wavelength[-1] == pytest.approx(last, abs=0.1)


def test_default_grid_is_dr12_with_three_chips():
    g = get_grid()
    assert g.id == DEFAULT_GRID == "apogee-aspcap-dr12"
    assert g.segments == ((0, 2920), (2920, 5320), (5320, 7214))


def test_identify_grid_recognises_float32_copies_and_hashes_custom_grids():
    g = get_grid("dr17")
    assert identify_grid(g.wavelength.astype(np.float32)).id == "apogee-aspcap-dr17"
    custom = np.linspace(15000, 17000, 100)
    assert grid_id(custom).startswith("custom-")
    assert grid_id(custom) == grid_id(custom.copy())
    assert grid_id(custom) != grid_id(custom[:-1])


def test_unknown_grid_name_lists_known_ones():
    with pytest.raises(ValueError, match="apogee-aspcap-dr12"):
        get_grid("sdss")
