"""What a visitor costs the server: page build time, 20 visitors at once, idle CPU, memory.

    python benchmarks/bench_sessions.py                       # this checkout's app on the demo
    python benchmarks/bench_sessions.py --repo /path/to/other/checkout --label before
    python benchmarks/bench_sessions.py --sessions 5 --idle 5   # quicker
    python benchmarks/bench_sessions.py --repo . --label pymalloc --repo . --label "glibc malloc" \
        --env PYTHONMALLOC=malloc                            # --env: for the --repo before it

Serves ``app.py`` of ``--repo`` (default: this checkout) with ``panel serve --address localhost``
as a child process (its own folder as the working directory, so its Training tab's ``runs/`` is
a fresh temporary one; the demo cache is taken from ``$TWINVIZ_DATA_DIR`` or this checkout's
``data/``). The clients do not render, so no browser competes for the cores:

* page build: plain HTTP GETs of ``/app`` one after another — the server runs ``app.py`` for a
  new session and renders the page (p50/p95; the first, cold one loads the data);
* N visitors at once: N ``bokeh.client.pull_session`` clients started together, each opening a
  websocket and pulling the whole document as a browser would (all served? time to the last);
* idle: the server's CPU (utime + stime from ``/proc``) while the N sessions stay open and
  nobody does anything, once on the first tab and once with every session on the Training tab;
* memory: server RSS before the visitors, with N sessions open (per session), and after they
  close and the server has discarded them;
* real pages (``--browsers B``, default 5; Chromium through Playwright, see browser_timing.py):
  one page alone, then B pages opened together — time to the first plot (the swap explorer's
  spectrum holding data, measured inside each page from its navigation start), then slider →
  plot latency with moves taking turns over the B open pages, and the pages' console errors.

Goals (issue 12): page build ≤ 0.5 s, first plot ≤ 3 s for one visitor, 20 visitors served within
30 s, 20 idle sessions ≤ 5 % CPU, memory back after the sessions close. Linux only (/proc). Prints one table.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# A closed session is discarded this long after its last connection went away.
UNUSED_LIFETIME_MS = 3000
CHECK_UNUSED_MS = 500


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_percent(pid: int, seconds: float, settle: float = 5.0) -> float:
    """The process's CPU % over ``seconds``, after ``settle`` seconds for the work that follows
    opening a page (deferred loads, first events) to finish."""
    time.sleep(settle)
    start, t0 = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (_cpu_seconds(pid) - start) / (time.monotonic() - t0)


def serve(repo: Path, workdir: Path, log, extra_env: dict | None = None):
    """Start ``panel serve repo/app.py`` on a free localhost port; returns (process, url)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(repo), **(extra_env or {}))
    env.setdefault("TWINVIZ_DATA_DIR", str(REPO / "data"))
    cmd = [sys.executable, "-m", "panel", "serve", str(repo / "app.py"), "--address", "localhost",
           "--port", str(port), "--allow-websocket-origin", f"localhost:{port}",
           "--check-unused-sessions", str(CHECK_UNUSED_MS),
           "--unused-session-lifetime", str(UNUSED_LIFETIME_MS)]
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited with code {proc.returncode}; see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"http://localhost:{port}/app"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"panel serve did not listen within 120 s; see {log.name}")


def get_page(url: str, timeout: float = 600) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
    if b"bokeh" not in body.lower():
        raise RuntimeError(f"GET {url} did not return the app page")
    return time.perf_counter() - t0


def open_session(url: str, arguments: dict | None):
    """A non-rendering visitor (twinviz.testing.visit). Returns (session, seconds)."""
    from twinviz.testing import visit

    t0 = time.perf_counter()
    session = visit(url, arguments)
    if not session.document.roots:
        raise RuntimeError("the pulled document is empty")
    return session, time.perf_counter() - t0


def open_many(url: str, n: int, arguments=None, timeout: float = 300):
    """n visitors started at once: (sessions, times, errors, wall seconds to the last)."""
    t0 = time.perf_counter()
    sessions, times, errors = [], [], []
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(open_session, url, arguments) for _ in range(n)]
        for future in futures:
            try:
                session, seconds = future.result(timeout=timeout)
                sessions.append(session)
                times.append(seconds)
            except Exception as exc:  # counted and reported, never hidden
                errors.append(f"{type(exc).__name__}: {exc}")
    return sessions, times, errors, time.perf_counter() - t0


def close_all(sessions) -> None:
    for session in sessions:
        try:
            session.close()
        except Exception:
            pass


def wait_until_discarded(pid: int) -> None:
    """Closed sessions are dropped after the unused lifetime, and the app releases memory
    RELEASE_DELAY_S after the last one (twinviz.app.session): wait for both, then for RSS to
    settle (no change over a second)."""
    from twinviz.app.session import RELEASE_DELAY_S

    time.sleep((UNUSED_LIFETIME_MS + 3 * CHECK_UNUSED_MS) / 1000 + RELEASE_DELAY_S + 1.0)
    last = _rss_mb(pid)
    for _ in range(20):
        time.sleep(1.0)
        now = _rss_mb(pid)
        if abs(now - last) < 1.0:
            return
        last = now


def browser_part(url: str, n_pages: int, moves: int) -> dict:
    """One real page alone, then ``n_pages`` together: first plot, slider latency, errors."""
    from playwright.sync_api import sync_playwright

    from browser_timing import SliderPage, launch, open_together

    out: dict = {}
    with sync_playwright() as p:
        browser = launch(p)
        try:
            pages, alone, errors = open_together(browser, url, 1)
            out["Chromium: first plot, one page alone, s"] = alone[0]
            pages[0].close()
            pages, seconds, more = open_together(browser, url, n_pages)
            errors += more
            out[f"Chromium: {n_pages} pages opened together: first plot p50 / max, s"] = (
                f"{np.percentile(seconds, 50):.2f} / {max(seconds):.2f}")
            sliders = [SliderPage(page) for page in pages]
            for slider in sliders:  # one untimed move each: first-use costs
                slider.move()
            times, in_page = [], []
            for _ in range(moves):
                for slider in sliders:
                    times.append(slider.move())
                    in_page.append(slider.last_in_page)
            out[f"Chromium: slider → plot over {n_pages} open pages, p50 / p95, ms"] = (
                f"{np.percentile(times, 50):.0f} / {np.percentile(times, 95):.0f}")
            out["Chromium: the same, key → frame in the page, p50 / p95, ms"] = (
                f"{np.percentile(in_page, 50):.0f} / {np.percentile(in_page, 95):.0f}")
            out["Chromium: console errors"] = len(errors)
            for error in errors[:5]:
                print("console error:", error)
        finally:
            browser.close()
    return out


def measure(repo: Path, n_sessions: int, idle_s: float, n_gets: int, log, n_browsers: int = 0,
            moves: int = 10, extra_env: dict | None = None) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        proc, url = serve(repo, Path(tmp), log, extra_env)
        try:
            out["first page (cold: loads the data), s"] = get_page(url)
            gets = [get_page(url) for _ in range(n_gets)]
            out["page build (GET /app), p50 s"] = float(np.percentile(gets, 50))
            out["page build (GET /app), p95 s"] = float(np.percentile(gets, 95))
            if n_browsers:
                out.update(browser_part(url, n_browsers, moves))
            wait_until_discarded(proc.pid)  # the GETs' sessions are never connected
            rss_before = out["server RSS before visitors, MB"] = _rss_mb(proc.pid)

            sessions, times, errors, wall = open_many(url, n_sessions)
            out[f"{n_sessions} visitors at once: served"] = f"{len(sessions)}/{n_sessions}"
            out[f"{n_sessions} visitors at once: time to last, s"] = wall
            out[f"{n_sessions} visitors at once: p50 s"] = float(np.percentile(times, 50)) if times else float("nan")
            out["errors"] = len(errors)
            out[f"idle CPU, {len(sessions)} sessions on the first tab, %"] = cpu_percent(proc.pid, idle_s)
            rss_open = _rss_mb(proc.pid)
            out[f"server RSS with {len(sessions)} sessions, MB"] = rss_open
            out["RSS per session, MB"] = (rss_open - rss_before) / max(1, len(sessions))

            close_all(sessions)
            wait_until_discarded(proc.pid)
            out["server RSS after they closed, MB"] = _rss_mb(proc.pid)

            training, _, more_errors, wall = open_many(url, n_sessions, arguments={"tab": "4"})
            errors += more_errors
            out[f"{n_sessions} visitors at once on ?tab=4 (Training): time to last, s"] = wall
            out[f"idle CPU, {len(training)} sessions on the Training tab, %"] = cpu_percent(proc.pid, idle_s)
            close_all(training)
            wait_until_discarded(proc.pid)
            rss_after_training = out["server RSS after all closed, MB"] = _rss_mb(proc.pid)
            # The same visitors again: a server whose memory comes back does not grow per round
            # (what stays after the first rounds is the allocator's and the libraries' warm-up;
            # tests/app/test_session.py checks that no object of a closed session stays).
            again, _, more_errors, _ = open_many(url, n_sessions)
            errors += more_errors
            close_all(again)
            wait_until_discarded(proc.pid)
            out[f"server RSS after {n_sessions} more on the first tab closed, MB"] = rss_again = _rss_mb(proc.pid)
            out["RSS growth over that last round, MB"] = rss_again - rss_after_training
            out["errors"] = len(errors)
            for error in errors[:5]:
                print("error:", error)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return out


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


class _EnvOfRepo(argparse.Action):
    """--env KEY=VALUE: an environment variable for the server of the --repo given before it."""

    def __call__(self, parser, namespace, value, option_string=None):
        key, sep, val = value.partition("=")
        if not sep or not key:
            parser.error(f"--env {value}: expected KEY=VALUE")
        envs = getattr(namespace, "env", None) or {}
        envs.setdefault(max(0, len(namespace.repo or []) - 1), {})[key] = val
        namespace.env = envs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, action="append",
                        help="checkout whose app.py to serve (repeat to compare; default: this one)")
    parser.add_argument("--label", action="append", help="column title per --repo")
    parser.add_argument("--env", action=_EnvOfRepo, default={}, metavar="KEY=VALUE",
                        help="environment variable for the server of the preceding --repo (repeatable)")
    parser.add_argument("--sessions", type=int, default=20, help="visitors opened at once")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU measurement")
    parser.add_argument("--gets", type=int, default=10, help="sequential page builds timed")
    parser.add_argument("--browsers", type=int, default=5, help="real Chromium pages opened together (0: none)")
    parser.add_argument("--moves", type=int, default=10, help="slider moves timed per Chromium page")
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "bench_sessions.log",
                        help="the servers' output")
    args = parser.parse_args(argv)
    repos = [r.resolve() for r in (args.repo or [REPO])]
    labels = args.label or [r.name for r in repos]
    if len(labels) != len(repos):
        parser.error("give one --label per --repo")
    columns = []
    with open(args.log, "w") as log:
        for i, (repo, label) in enumerate(zip(repos, labels)):
            env = args.env.get(i, {})
            print(f"measuring {label} ({repo}{''.join(f', {k}={v}' for k, v in env.items())}) …", flush=True)
            columns.append(measure(repo, args.sessions, args.idle, args.gets, log, args.browsers, args.moves, env))
    rows = list(dict.fromkeys(k for column in columns for k in column))
    print(f"\n{os.cpu_count()} CPU cores; server output in {args.log}\n")
    print("| measure | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for row in rows:
        print(f"| {row} | " + " | ".join(_cell(c.get(row, "")) for c in columns) + " |")


if __name__ == "__main__":
    main()
