"""Packaging promises: environment.yml matches pyproject.toml, the CLI entry points exist,
.ci/run runs the README's test command, the docs are self-contained (no citation of a file
outside the repository), and a non-editable install of the wheel serves the app with its
static files."""
import base64
import json
import os
import re
import shutil
import site
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
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


def test_environment_yml_installs_every_user_extra_and_the_tests_need_them_too():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {name for name in project["optional-dependencies"] if name != "test"}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    m = re.match(r"-e \.\[([a-z,]+)\]", pip_lines[0])
    assert m and set(m.group(1).split(",")) == extras == {"fits", "scale"}
    test_deps = {_name_and_spec(r) for r in project["optional-dependencies"]["test"]}
    for name in extras:  # the tests exercise every extra (import apogee, embed --scheduler distributed)
        assert {_name_and_spec(r) for r in project["optional-dependencies"][name]} <= test_deps


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
    assert (ROOT / ".git").exists(), "this check reads the tracked files: run it from a git checkout"
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


# Run by the venv's Python in a folder outside the checkout: where twinviz comes from, its
# package data, and app.py (copied there) building the explorer on the toy sample.
_INSTALLED_CHECK = """
import json, runpy, sys
import twinviz
from twinviz.app import theme
from twinviz.spectra.linelist import LINELIST_PATH, load_linelist
from twinviz.testing import make_sample

model, data, latents = make_sample("sample", n_pairs=20)
sys.argv = ["app.py", "--model", str(model), "--data", str(data), "--latents", str(latents)]
page = runpy.run_path("app.py")["page"]
print(json.dumps({"twinviz": twinviz.__file__, "logo": theme.logo_path(),
                  "css": theme.asset_text("twinviz.css"), "linelist": str(LINELIST_PATH),
                  "lines": len(next(iter(load_linelist().values()))),
                  "explorer": hasattr(page, "explorer"),
                  "args": sys.argv[1:]}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run(cmd, **kwargs) -> str:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


@pytest.mark.install
def test_a_non_editable_install_serves_the_app_with_its_static_files(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    # Build from a copy of the sources, so the checkout gets no build/ or *.egg-info.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "twinviz", src / "twinviz", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", tmp_path / "dist", src],
         env=env)
    wheel = next((tmp_path / "dist").glob("twinviz-*.whl"))
    # A fresh venv that sees the packages of the environment running the tests (no downloads) —
    # not the base interpreter's, which `--system-site-packages` would give when the tests run
    # inside a venv — and twinviz from the wheel only: the running environment's site-packages
    # are appended by a .pth file, after the new venv's own (a path listed in a .pth file has its
    # own .pth files left unprocessed, so the editable install's finder stays out).
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env=env)
    python = venv / "bin" / "python"
    own = next(venv.glob("lib/python*/site-packages"))
    outer = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    (own / "twinviz-test-outer-env.pth").write_text("\n".join(outer) + "\n")
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel],
         env=env)

    run = tmp_path / "elsewhere"
    run.mkdir()
    shutil.copy(ROOT / "app.py", run / "app.py")
    out = _run([python, "-c", _INSTALLED_CHECK], cwd=run, env=env, timeout=300)
    found = json.loads(out.strip().splitlines()[-1])
    installed = venv.resolve()
    for key in ("twinviz", "logo", "linelist"):
        assert found[key] and Path(found[key]).resolve().is_relative_to(installed), (key, found[key])
    css = (ROOT / "twinviz" / "app" / "static" / "twinviz.css").read_text(encoding="utf-8")
    assert found["css"] == css
    assert found["lines"] > 0 and found["explorer"], found

    # `panel serve app.py` with the installed package: the page and every local resource it
    # names answer 200; the logo and the CSS are embedded in the page.
    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")
    server = subprocess.Popen([str(python), "-m", "panel", "serve", "app.py", "--port", str(port),
                               "--allow-websocket-origin", f"localhost:{port}", "--args", *found["args"]],
                              cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://localhost:{port}/"
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                status, page = _get(url + "app")
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)
        assert status == 200
        html = page.decode()
        logo = (ROOT / "twinviz" / "app" / "static" / "logo.svg").read_bytes()
        assert base64.b64encode(logo).decode() in html, "the logo is not in the page"
        assert css.strip() in html, "twinviz.css is not in the page"
        resources = sorted(set(re.findall(r'(?:href|src)="(static/[^"]+)"', html)))
        assert resources
        for resource in resources:
            assert _get(url + resource)[0] == 200, resource
        served_log = (tmp_path / "serve.log").read_text()
        assert "Traceback" not in served_log and "ERROR" not in served_log, served_log
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
