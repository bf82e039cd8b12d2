"""JupyterLab + Chromium fixtures for the widget browser tests.

One JupyterLab server per session (free port, no token, temporary HOME, settings and
workspaces, ``window.jupyterapp`` exposed), one Chromium per session, and a fresh page
and workspace per test. Notebooks come from ``tests/browser/notebooks`` (copied to a
temporary root so nothing is written back). Kernel state is read by executing code in
the notebook's own kernel through ``window.jupyterapp`` (see :meth:`LabPage.kernel_exec`).

Chromium is the system one (``/usr/bin/chromium``, or ``$CHROMIUM``) driven through the
``playwright`` package; the tests skip only when no Chromium binary exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOKS = HERE / "notebooks"

# the fixture notebooks are driven by the browser tests, not compared by nbval
collect_ignore_glob = ["notebooks/*"]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when there is none."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, timeout: float = 5.0) -> Any:
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read()
    return json.loads(body) if body else None


class Lab:
    """A running JupyterLab server."""

    def __init__(self, url: str, proc: subprocess.Popen, root: Path, log: Path) -> None:
        self.url = url
        self.proc = proc
        self.root = root
        self.log = log

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def _seed_settings(settings: Path) -> None:
    def put(path: str, data: dict) -> None:
        target = settings / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data))

    # no news popup over the page, and no autosave writing outputs into the notebooks
    put("@jupyterlab/apputils-extension/notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False})
    put("@jupyterlab/docmanager-extension/plugin.jupyterlab-settings", {"autosave": False})


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A JupyterLab server for the session; its sessions are deleted and it is stopped at the end."""
    if chromium_path() is None:
        pytest.skip("no Chromium binary (looked for $CHROMIUM, /usr/bin/chromium, chromium on PATH); "
                    "install it (apt-get install chromium) to run the browser tests")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is needed to drive Chromium")
    base = tmp_path_factory.mktemp("lab")
    root, home, settings, workspaces = (base / n for n in ("root", "home", "settings", "workspaces"))
    for d in (root, home, settings, workspaces, base / "tmp", base / "runtime"):
        d.mkdir(parents=True, exist_ok=True)
    for nb in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    _seed_settings(settings)
    port = _free_port()
    env = {**os.environ, "HOME": str(home), "TMPDIR": str(base / "tmp"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "JUPYTER_PLATFORM_DIRS": "1",
           "IPYTHONDIR": str(home / ".ipython"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
           f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={workspaces}",
           f"--LabApp.user_settings_dir={settings}", "--LabApp.expose_app_in_browser=True"]
    log = base / "lab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    server = Lab(url, proc, root, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            _http("GET", f"{url}/api/status", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start (exit {proc.poll()}):\n{server.log_tail()}")
            time.sleep(0.25)
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            for session in _http("GET", f"{url}/api/sessions") or []:
                _http("DELETE", f"{url}/api/sessions/{session['id']}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server's own process group: it and its kernels
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def browser(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the session."""
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path_factory.mktemp("pw-browsers")))
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class LabPage:
    """A Playwright page showing one notebook in its own JupyterLab workspace."""

    def __init__(self, page: Any, lab: Lab) -> None:
        self.page = page
        self.lab = lab
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))

    def open(self, notebook: str, timeout: float = 90_000) -> None:
        """Open ``notebook`` in a fresh workspace and wait until its kernel is connected and idle."""
        workspace = f"t{uuid.uuid4().hex[:10]}"
        self.page.goto(f"{self.lab.url}/lab/workspaces/{workspace}/tree/{notebook}")
        self.page.wait_for_function(
            """(path) => {
                const app = window.jupyterapp;
                const w = app && app.shell && app.shell.currentWidget;
                if (!w || !w.context || w.context.path !== path) return false;
                const kernel = w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
            }""",
            arg=notebook, timeout=timeout, polling=200)
        # the status bar agrees (it says "idle" before a kernel exists, hence the check above first)
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /\\| Idle$/.test(e.textContent.trim()))",
            timeout=timeout, polling=200)

    def run_all(self) -> None:
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def wait_idle(self, timeout: float = 60_000) -> None:
        self.page.wait_for_function(
            """() => {
                const w = window.jupyterapp.shell.currentWidget;
                const k = w.sessionContext.session.kernel;
                return k.status === 'idle';
            }""", timeout=timeout, polling=100)

    def kernel_exec(self, code: str, timeout: float = 60_000) -> str:
        """Run ``code`` in the notebook's kernel (not as a cell) and return its printed output.

        A Python exception fails the test with its traceback.
        """
        result = self.page.evaluate(
            """async ([code, timeout]) => {
                const w = window.jupyterapp.shell.currentWidget;
                const kernel = w.sessionContext.session.kernel;
                const future = kernel.requestExecute({code, store_history: false});
                let out = '';
                let error = null;
                future.onIOPub = (msg) => {
                    const t = msg.header.msg_type;
                    if (t === 'stream') out += msg.content.text;
                    else if (t === 'execute_result') out += (msg.content.data['text/plain'] || '') + '\\n';
                    else if (t === 'error') error = msg.content.traceback.join('\\n');
                };
                const timer = new Promise((_, reject) => setTimeout(() => reject(new Error('kernel_exec timed out')), timeout));
                await Promise.race([future.done, timer]);
                return {out, error};
            }""", [code, timeout])
        if result["error"]:
            pytest.fail(f"kernel code raised:\n{code}\n{result['error']}")
        return result["out"]

    def kernel_json(self, expr: str) -> Any:
        """The value of ``expr`` in the kernel, through JSON."""
        out = self.kernel_exec(f"import json as _j; print('@@' + _j.dumps({expr}, default=str))")
        line = next(line for line in out.splitlines() if line.startswith("@@"))
        return json.loads(line[2:])

    def screenshot(self, selector: str, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.locator(selector).first.screenshot(path=str(path))
        return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    """Keep each phase's report on the test item, so the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def lab_page(lab: Lab, browser: Any, request: Any) -> Iterator[LabPage]:
    """A fresh browser context and page (so no state leaks between tests).

    When the test fails, the whole page is saved as ``test-artifacts/failed-<test>.png``.
    """
    context = browser.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    lp = LabPage(page, lab)
    try:
        yield lp
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            with contextlib.suppress(Exception):
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
        with contextlib.suppress(Exception):
            # shut the notebook's kernel down so the next test starts clean
            lp.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        context.close()
