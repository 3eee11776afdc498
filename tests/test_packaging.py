"""Packaging promises: environment.yml matches pyproject.toml, the CLI entry points exist,
and .ci/run runs the README's test command."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

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
