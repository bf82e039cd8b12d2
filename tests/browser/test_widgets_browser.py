"""The widgets in a real browser: JupyterLab in headless Chromium, asserting on the DOM and the kernel.

Each test opens a fixture notebook from ``tests/browser/notebooks`` in a fresh workspace,
runs it, acts on the widget the way a person would (clicks, typing), and checks both the
page and the kernel's state. A screenshot of each widget is saved under ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spiraltorch_nb.backends import probe

pytestmark = pytest.mark.browser

WGPU = probe("wgpu")
#: as in tests/conftest.py: in CI an absent wgpu adapter fails the run instead of skipping
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_wgpu(what: str) -> None:
    """Skip (or, in CI, fail) a test that needs a second device to switch to."""
    if WGPU["available"]:
        return
    if IN_CI:
        pytest.fail(f"wgpu must be available here (CI=true) to {what}, but is not: {WGPU['reason']}")
    pytest.skip(f"only one available device here, so no switch to {what}: wgpu {WGPU['reason']}")


def wgpu_or_fail_in_ci(what: str) -> bool:
    """Whether wgpu is there; in CI its absence fails the test at once."""
    if not WGPU["available"] and IN_CI:
        pytest.fail(f"wgpu must be available here (CI=true) to {what}, but is not: {WGPU['reason']}")
    return bool(WGPU["available"])


# Records every state each device card is drawn in (cards are re-created on each draw, so the
# added nodes keep the state they were drawn with), however briefly it lasted.
WATCH_CARDS = """() => {
    window.__cards = [];
    const list = document.querySelector('.st-device-switcher .st-device-list');
    new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes)
            if (n.dataset && n.dataset.device) window.__cards.push(`${n.dataset.device}:${n.dataset.state}`);
    }).observe(list, {childList: true});
}"""


def test_device_switcher_click_moves_model_and_default_device(lab_page) -> None:
    page = lab_page.page
    lab_page.open("device_switcher.ipynb")
    lab_page.run_all()
    page.wait_for_selector(".st-device-switcher .st-device[data-device=cpu][data-state=current]")
    assert lab_page.kernel_json("str(st.get_default_device())") == "cpu"

    # an unavailable device: the reason is shown in the widget, nothing moves, the kernel sees no exception
    page.click(".st-device[data-device=cuda]")
    page.wait_for_selector(".st-ds-error:not([hidden])")
    assert "cuda" in page.inner_text(".st-ds-error")
    state = lab_page.kernel_json("[str(st.get_default_device()), str(next(model.parameters()).device), sw.error]")
    assert state[:2] == ["cpu", "cpu"] and "cannot switch to cuda" in state[2]

    if not WGPU["available"]:
        lab_page.screenshot(".st-device-switcher", "device_switcher.png")
    require_wgpu("observe")
    page.click(".st-device[data-device=wgpu]")
    page.wait_for_selector(".st-device[data-device=wgpu][data-state=current]")
    assert page.get_attribute(".st-device[data-device=cpu]", "data-state") == "available"
    assert page.locator(".st-ds-error").is_hidden()
    devices = lab_page.kernel_json(
        "[str(st.get_default_device()), sorted({str(p.device) for p in model.parameters()}), "
        "sorted({str(v.device) for s in opt.state.values() for v in s.values() if isinstance(v, st.Tensor)}), "
        "sw.current]")
    assert devices[0] == "wgpu" and devices[1] == ["wgpu"] and devices[3] == "wgpu"
    assert set(devices[2]) <= {"wgpu"}
    lab_page.screenshot(".st-device-switcher", "device_switcher.png")
    page.click(".st-device[data-device=cpu]")
    page.wait_for_selector(".st-device[data-device=cpu][data-state=current]")
    assert lab_page.kernel_json("str(st.get_default_device())") == "cpu"


def test_dashboard_live_during_background_fit(lab_page) -> None:
    page = lab_page.page
    page.set_viewport_size({"width": 1300, "height": 1800})  # the whole dashboard in view for its screenshot
    lab_page.open("telemetry_dashboard.ipynb")
    # count long tasks and frame gaps on the page while training streams in
    page.evaluate("""() => {
        window.__st = {longtasks: [], gaps: [], last: performance.now()};
        new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__st.longtasks.push(e.duration); })
            .observe({entryTypes: ['longtask']});
        const tick = (t) => { window.__st.gaps.push(t - window.__st.last); window.__st.last = t;
                              requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
    }""")
    lab_page.run_all()
    lab_page.wait_idle()
    chart = ".st-dashboard .st-chart[data-panel=loss]"
    page.wait_for_function(f"() => +(document.querySelector('{chart}')?.dataset.total || 0) > 0")
    first = int(page.get_attribute(chart, "data-total"))
    # steady state from here: the page's frames, long tasks and the dashboard's own drawing time
    page.evaluate("""() => { window.__st.longtasks = []; window.__st.gaps = []; window.__st.t0 = performance.now();
                             window.__st.draw0 = +document.querySelector('.st-dashboard').dataset.drawMsTotal || 0; }""")
    count_updates = "() => ({t: performance.now(), n: +document.querySelector('.st-dashboard').dataset.updates})"
    start = page.evaluate(count_updates)
    page.wait_for_function(f"(n) => +document.querySelector('{chart}').dataset.total > n + 20", arg=first)
    page.wait_for_timeout(2000)
    later = int(page.get_attribute(chart, "data-total"))
    end = page.evaluate(count_updates)
    updates, window_s = end["n"] - start["n"], (end["t"] - start["t"]) / 1e3
    assert later > first
    assert page.locator(".st-dashboard .st-op-row").count() > 0  # per-op breakdown arrived
    assert page.locator(".st-dashboard .st-chart[data-panel=memory]").count() == 1
    # the switcher's readout comes from the run's recorder, and says so
    page.wait_for_selector(".st-device[data-device=cpu] .st-device-readout-source[data-step=telemetry]")
    assert page.inner_text(".st-device[data-device=cpu] .st-device-readout-source") == "from telemetry"

    # clicking the device the run is on changes nothing and leaves nothing pending
    page.evaluate(WATCH_CARDS)
    page.click(".st-device-switcher .st-device[data-device=cpu]")
    page.wait_for_function("() => document.querySelector('.st-ds-status').textContent.startsWith('already on cpu')")
    assert lab_page.kernel_json("[sw.pending, sw.current, str(run.trainer.device)]") == ["", "cpu", "cpu"]
    assert not any(state.endswith(":pending") for state in page.evaluate("() => window.__cards"))

    # switch device mid-training: pending until the trainer applies it at a step boundary, then current
    switched = wgpu_or_fail_in_ci("switch during a fit")
    if switched:
        page.evaluate(WATCH_CARDS)
        page.click(".st-device-switcher .st-device[data-device=wgpu]")
        page.wait_for_selector(".st-device[data-device=wgpu][data-state=current]", timeout=60_000)
        seen = page.evaluate("() => window.__cards.filter((c) => c.startsWith('wgpu:'))")
        assert "wgpu:pending" in seen and seen.index("wgpu:pending") < seen.index("wgpu:current"), seen
        kernel = lab_page.kernel_json("[str(run.trainer.device), str(st.get_default_device()), sw.pending, "
                                      "[o['label'] for o in dash.overlays if o['kind'] == 'device']]")
        assert kernel[:3] == ["wgpu", "wgpu", ""] and kernel[3] == ["→ wgpu"]
        # the switch is marked and labelled on the loss chart
        page.wait_for_function(
            f"() => (document.querySelector('{chart} canvas').dataset.labels || '').includes('→ wgpu')")
        page.wait_for_timeout(1500)  # a few steps on wgpu, for the screenshot's overlay
    # hundreds of epochs: a few thinned epoch marks, not a grid
    assert 0 < int(page.get_attribute(f"{chart} canvas", "data-epoch-lines")) <= 20

    assert lab_page.kernel_json("run.exception is None and not run.done")  # still training
    stats = lab_page.kernel_json("dash.stats")
    steps = lab_page.kernel_json("run.progress['step']")
    page.wait_for_timeout(300)
    lab_page.screenshot(".st-dashboard", "telemetry_dashboard.png")
    lab_page.screenshot(".st-device-switcher", "device_switcher_during_fit.png")
    perf = page.evaluate("""() => ({longtasks: window.__st.longtasks,
                                    window: performance.now() - window.__st.t0,
                                    drawing: +document.querySelector('.st-dashboard').dataset.drawMsTotal - window.__st.draw0,
                                    draw: document.querySelector('.st-dashboard').dataset,
                                    maxGap: Math.max(...window.__st.gaps),
                                    frames: window.__st.gaps.length})""")
    # the Export button writes the frames and the figure into the kernel's working directory
    page.click(".st-dash-export")
    page.wait_for_function("() => /^exported to /.test(document.querySelector('.st-dash-export-status').textContent)",
                           timeout=60_000)
    kernel_dir = Path(lab_page.kernel_json("__import__('os').getcwd()")).resolve()
    assert kernel_dir == Path(lab_page.lab.root).resolve()
    exported = [d for d in (kernel_dir / "telemetry-export").iterdir() if d.is_dir()]
    assert len(exported) == 1
    files = sorted(p.name for p in exported[0].iterdir())
    assert {"dashboard.html", "history.parquet", "metrics.parquet", "ops.parquet", "memory.parquet",
            "overlays.json"} <= set(files), files
    assert page.inner_text(".st-dash-export-status") == f"exported to {exported[0].relative_to(kernel_dir)}"

    lab_page.kernel_exec("run.stop(); run.wait(timeout=30)")
    print(f"\n[dashboard] {steps} steps, {later} loss points recorded by the page, {updates} updates in "
          f"{window_s:.2f} s ({updates / window_s:.1f}/s); "
          f"kernel sent {stats}; page: {perf['frames']} frames, max frame gap {perf['maxGap']:.0f} ms, "
          f"long tasks {[round(x) for x in perf['longtasks']]}; dashboard drawing: max {perf['draw']['drawMsMax']} ms "
          f"per frame, {perf['drawing']:.0f} ms in a {perf['window']:.0f} ms window "
          f"({100 * perf['drawing'] / perf['window']:.1f}%)")
    # coalescing: the page got at most ~10 updates per second, not one per step (two in flight at the
    # window's edges may land inside it)
    assert updates / window_s <= 10 + 2 / window_s
    assert lab_page.kernel_json("[dash.overlays[0]['kind'], dash.overlays[0]['label']]") == ["epoch", "epoch 1"]
    if not switched:
        pytest.skip(f"everything but the switch during a fit was checked: it needs wgpu ({WGPU['reason']})")


def test_pipeline_editor_add_and_configure_two_stages(lab_page) -> None:
    page = lab_page.page
    lab_page.open("pipeline_editor.ipynb")
    lab_page.run_all()
    page.wait_for_selector(".st-pipeline-editor .st-palette-item[data-module=linear]")

    page.click(".st-palette-item[data-module=linear]")
    stage0 = ".st-stage[data-index='0']"
    page.wait_for_selector(f"{stage0}[data-module=linear]")
    # in_features was inferred from the input shape; out_features is required and missing: shown at the field
    assert page.input_value(f"{stage0} input[name=in_features]") == "8"
    page.wait_for_selector(f"{stage0} .st-field[data-field=out_features] .st-field-error")

    # a bad value stays where it was typed, with an inline error; the kernel gets no exception
    page.fill(f"{stage0} input[name=out_features]", "many")
    page.press(f"{stage0} input[name=out_features]", "Enter")
    page.wait_for_function(
        f"() => /must be/.test(document.querySelector(\"{stage0} .st-field[data-field=out_features] .st-field-error\")?.textContent || '')")
    assert lab_page.kernel_json("ed.error") == ""
    lab_page.screenshot(".st-pipeline-editor", "pipeline_editor_inline_error.png")
    page.fill(f"{stage0} input[name=out_features]", "16")
    page.press(f"{stage0} input[name=out_features]", "Enter")
    page.wait_for_function(f"() => document.querySelector(\"{stage0} .st-stage-shape\").textContent.includes('(4, 16)')")
    assert page.locator(f"{stage0} .st-field-error").count() == 0
    assert "144 params" in page.inner_text(f"{stage0} .st-stage-params")

    page.click(".st-palette-item[data-module=dropout]")
    stage1 = ".st-stage[data-index='1']"
    page.wait_for_selector(f"{stage1}[data-module=dropout]")
    page.fill(f"{stage1} input[name=p]", "0.25")
    page.press(f"{stage1} input[name=p]", "Enter")
    page.wait_for_function(f"() => document.querySelector(\"{stage1} input[name=p]\").value === '0.25'")
    page.wait_for_function("() => document.querySelector('.st-pe-summary').textContent.includes('144 parameters')")

    config = lab_page.kernel_json("ed.config")
    assert config == {"version": 1, "stages": [
        {"name": "linear", "params": {"in_features": 8, "out_features": 16}},
        {"name": "dropout", "params": {"p": 0.25}},
    ], "input_shape": [4, 8]}
    built = lab_page.kernel_exec("print(ed.build())")
    assert "Linear" in built and "Dropout" in built

    # a module registered now (as a plugin would) appears in the palette without re-running anything
    lab_page.kernel_exec(
        "class Scale(st.nn.Module):\n"
        "    '''Multiply by a constant.'''\n"
        "    def __init__(self, factor: float = 2.0):\n"
        "        super().__init__(); self.factor = factor\n"
        "    def forward(self, x):\n"
        "        return x * self.factor\n"
        "_handle = st.nn.discovery.default_registry().register('scale_block', Scale, category='custom', replace=True)")
    page.wait_for_selector(".st-palette-group[data-category=custom] .st-palette-item[data-module=scale_block]")
    page.click(".st-palette-item[data-module=scale_block]")
    page.wait_for_selector(".st-stage[data-index='2'][data-module=scale_block]")
    page.click(".st-stage[data-index='2'] .st-stage-up")
    page.wait_for_selector(".st-stage[data-index='1'][data-module=scale_block]")
    names = lab_page.kernel_json("[s['name'] for s in ed.stages]")
    assert names == ["linear", "scale_block", "dropout"]
    lab_page.screenshot(".st-pipeline-editor", "pipeline_editor.png")
    lab_page.kernel_exec("st.nn.discovery.default_registry().unregister('scale_block')")
    print("\n[editor] config", json.dumps(config))

