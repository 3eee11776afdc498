"""Packaging promises: environment.yml matches pyproject.toml, the CLI entry points exist,
.ci/run runs the README's test command, and the docs are self-contained (no citation of a
file outside the repository)."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda package names that differ from their PyPI names
CONDA_NAME = {"torch": "pytorch"}


def _name_and_spec(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = dict(_name_and_spec(r) for r in project["dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_deps = dict(_name_and_spec(d) for d in env["dependencies"] if isinstance(d, str))
    conda_deps.pop("python"), conda_deps.pop("pip")
    expected = {CONDA_NAME.get(n, n): spec for n, spec in pip_deps.items()}
    assert conda_deps == expected
    assert project["requires-python"] == ">=3.10" and "python>=3.10" in env["dependencies"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)?\n(.+?)\n```", readme, re.S)
    assert m, "README must show the test command after a <!-- test-command --> marker"
    command = m.group(1).strip()
    assert command in ci.splitlines()


def test_console_script_and_module_entry_point_work():
    out = subprocess.run([sys.executable, "-m", "twinviz", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "twinviz" in out
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["twinviz"] == "twinviz.cli:main"


def test_top_level_layout_matches_the_plan():
    for name in ["twinviz", "app.py", "assets", "data", "tests", "environment.yml", "README.md"]:
        assert (ROOT / name).exists(), name


# Files that are not in this repository and must not be cited by it (the docs are self-contained:
# docs/science.md holds the method, metrics, grid and published numbers).
FOREIGN_CITATIONS = ("SCIENCE" + ".md", "../" + "shared")


def test_no_tracked_file_cites_a_file_outside_the_repository():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no tracked files to check")
    this = Path(__file__).resolve().relative_to(ROOT).as_posix()
    patterns = [arg for needle in FOREIGN_CITATIONS for arg in ("-e", needle)]
    found = subprocess.run(["git", "grep", "-l", "-F", *patterns, "--", ".", f":!{this}"],
                           cwd=ROOT, capture_output=True, text=True)
    assert found.returncode in (0, 1), found.stderr  # 1: no match
    assert found.stdout.split() == [], f"cite docs/science.md instead of {FOREIGN_CITATIONS} in these files"


def test_synth_doc_states_the_label_distribution_the_code_draws():
    from twinviz.spectra.labels import XFE_MEAN_SIGMA

    doc = (ROOT / "docs" / "synth.md").read_text().replace("\u2212", "-")
    rows = dict((m.group(1), (float(m.group(2)), float(m.group(3))))
                for m in re.finditer(r"^\s*\|\s*([A-Z][a-z]?)\s*\|\s*([+-]?[\d.]+)\s*\|\s*([\d.]+)\s*\|\s*$",
                                     doc, re.M))
    assert rows == {el: (float(m), float(s)) for el, (m, s) in XFE_MEAN_SIGMA.items()}
