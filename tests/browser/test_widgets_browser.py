"""The widgets in a real browser: JupyterLab in headless Chromium, asserting on the DOM and the kernel.

Each test opens a fixture notebook from ``tests/browser/notebooks`` in a fresh workspace,
runs it, acts on the widget the way a person would (clicks, typing), and checks both the
page and the kernel's state. A screenshot of each widget is saved under ``test-artifacts/``.
"""

from __future__ import annotations

import json

import pytest

from spiraltorch_nb.backends import probe

pytestmark = pytest.mark.browser

WGPU = probe("wgpu")


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
        pytest.skip(f"only one available device here, so no switch to observe: wgpu {WGPU['reason']}")
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
    updates_before = int(page.get_attribute(".st-dashboard", "data-updates"))
    page.wait_for_function(f"(n) => +document.querySelector('{chart}').dataset.total > n + 20", arg=first)
    page.wait_for_timeout(2000)
    later = int(page.get_attribute(chart, "data-total"))
    updates = int(page.get_attribute(".st-dashboard", "data-updates")) - updates_before
    assert later > first
    assert page.locator(".st-dashboard .st-op-row").count() > 0  # per-op breakdown arrived
    assert page.locator(".st-dashboard .st-chart[data-panel=memory]").count() == 1

    # switch device mid-training: pending until the trainer applies it at a step boundary
    if WGPU["available"]:
        page.click(".st-device-switcher .st-device[data-device=wgpu]")
        page.wait_for_selector(".st-device[data-device=wgpu][data-state=current]", timeout=60_000)
        kernel = lab_page.kernel_json("[str(run.trainer.device), str(st.get_default_device()), "
                                      "[o['label'] for o in dash.overlays if o['kind'] == 'device']]")
        assert kernel[:2] == ["wgpu", "wgpu"] and kernel[2] == ["→ wgpu"]
        page.wait_for_timeout(1500)  # a few steps on wgpu, for the screenshot's overlay

    assert lab_page.kernel_json("run.exception is None and not run.done")  # still training on wgpu
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
    lab_page.kernel_exec("run.stop(); run.wait(timeout=30)")
    print(f"\n[dashboard] {steps} steps, {later} loss points recorded by the page, {updates} updates in ~2 s; "
          f"kernel sent {stats}; page: {perf['frames']} frames, max frame gap {perf['maxGap']:.0f} ms, "
          f"long tasks {[round(x) for x in perf['longtasks']]}; dashboard drawing: max {perf['draw']['drawMsMax']} ms "
          f"per frame, {perf['drawing']:.0f} ms in a {perf['window']:.0f} ms window "
          f"({100 * perf['drawing'] / perf['window']:.1f}%)")
    # coalescing: the page got at most ~10 updates per second, not one per step
    assert updates <= 2.5 * 10 + 3
    assert lab_page.kernel_json("dash.overlays[0]['kind']") == "epoch"


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
    ]}
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

