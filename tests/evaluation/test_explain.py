"""Why are these twins: the chemical-difference spectrum and its lines (issue 13, part 4)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from twinviz.evaluation.explain import difference_spectrum, explain_pair, line_elements, strongest_lines
from twinviz.spectra.synth import ELEMENTS, Synthesizer

ELEMENTS_TESTED = ("Mg", "Si", "Ti", "Ni")


@pytest.fixture(scope="module")
def synth():
    return Synthesizer()


@pytest.fixture(scope="module")
def demo_model():
    from twinviz.demo import demo_root
    from twinviz.model import FaderNetwork

    return FaderNetwork.from_pretrained(demo_root() / "demo" / "model")


def _share(rows, element, top):
    return sum(element in (r["elements"] or []) for r in rows[:top])


@pytest.mark.parametrize("element", ELEMENTS_TESTED + ("Ca", "Na", "V"))
def test_the_true_difference_of_one_element_is_labelled_with_that_element(synth, element):
    x0 = np.zeros(len(ELEMENTS))
    x1 = x0.copy()
    x1[ELEMENTS.index(element)] += 0.1
    diff = synth.spectrum(4600, 2.4, -0.1, x1).astype(float) - synth.spectrum(4600, 2.4, -0.1, x0)
    rows = strongest_lines(synth.wavelength, diff, 4600, 2.4, n=4)
    assert rows[0]["elements"] == [element] and _share(rows, element, 4) >= 3
    assert all(abs(r["line_wavelength"] - r["wavelength"]) <= 0.6 for r in rows)
    assert [abs(r["delta_flux"]) for r in rows] == sorted((abs(r["delta_flux"]) for r in rows), reverse=True)


def test_molecules_name_their_elements():
    assert line_elements("CN") == ("C", "N") and line_elements("OH") == ("O",) and line_elements("Fe") == ("Fe",)


def test_true_twins_give_a_near_zero_difference_non_twins_do_not(synth, demo_model):
    from twinviz.model import encode_arrays
    from twinviz.spectra.labels import draw_labels

    lab = draw_labels(20, 2, seed=3)
    flux = synth.batch(lab["teff"], lab["logg"], lab["fe_h"], lab["x_fe"])
    z = encode_arrays(demo_model, flux, lab["teff"], lab["logg"])
    twin, other, raw = [], [], []
    for g in range(20):
        a, b, c = 2 * g, 2 * g + 1, (2 * g + 2) % 40
        u = (lab["teff"][a], lab["logg"][a])
        twin.append(np.sqrt(np.mean(difference_spectrum(demo_model, z[a], z[b], *u) ** 2)))
        other.append(np.sqrt(np.mean(difference_spectrum(demo_model, z[a], z[c], *u) ** 2)))
        raw.append(np.sqrt(np.mean((flux[a] - flux[b]).astype(float) ** 2)))
    # decoding at one (Teff, logg) removes the temperature/gravity difference of the raw spectra
    assert np.median(twin) < 0.15 * np.median(raw) and np.median(twin) < 0.15 * np.median(other)
    assert np.abs(difference_spectrum(demo_model, z[0], z[0], 4500, 2.0)).max() < 1e-6  # one latent: nothing


@pytest.mark.parametrize("element", ELEMENTS_TESTED)
def test_changing_one_element_lights_up_its_lines_through_the_model(synth, demo_model, element):
    from twinviz.model import encode_arrays

    x0 = np.random.default_rng(0).normal(0.05, 0.05, len(ELEMENTS))
    x1 = x0.copy()
    x1[ELEMENTS.index(element)] += 0.2
    flux = np.stack([synth.spectrum(4600, 2.4, -0.1, x0), synth.spectrum(4900, 2.8, -0.1, x1)])
    z = encode_arrays(demo_model, flux, [4600, 4900], [2.4, 2.8])
    e = explain_pair(demo_model, z[1], z[0], 4600, 2.4, synth.wavelength, n=4)
    assert e["lines"][0]["elements"] == [element] and _share(e["lines"], element, 4) >= 3
    assert e["lines"][0]["delta_flux"] < 0  # more of the element: deeper lines, lower flux


def test_twins_explain_cli(tmp_path):
    from twinviz.testing import make_sample

    model, data, latents = make_sample(tmp_path, n_pairs=20)
    run = [sys.executable, "-m", "twinviz", "twins", "--data", str(data), "--star", "1000", "-k", "3"]
    ok = subprocess.run(run + ["--model", str(model), "--explain", "1001", "--explain-lines", "3"],
                        capture_output=True, text=True, timeout=180)
    assert ok.returncode == 0, ok.stderr
    why = ok.stdout.split("why:")[1]
    assert "star 1000 minus star 1001" in why and len(why.strip().splitlines()) == 2 + 3
    no_model = subprocess.run([sys.executable, "-m", "twinviz", "twins", "--latents", str(latents), "--star", "1000",
                               "--explain"], capture_output=True, text=True, timeout=180)
    assert no_model.returncode == 2 and "--explain" in no_model.stderr and "Fix: add --model" in no_model.stderr
