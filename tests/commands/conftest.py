"""Shared by the command tests: run ``python -m twinviz`` as a user would, and a small sample
(toy spectra on the real grid, an untrained model, its latents) per test module."""
from __future__ import annotations

import subprocess
import sys

import pytest

from twinviz.testing import make_sample


def run_twinviz(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "twinviz", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("command-sample"), n_pairs=60)
