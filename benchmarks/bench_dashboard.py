"""What a live TelemetryDashboard costs a long training run, and the numbers behind its canvas renderer.

Part 1, a long fit. A Trainer fits a tiny model (4-8-2 MLP, batch 4) for ``--steps``
steps with a telemetry Recorder among its callbacks, in two modes run alternately
(``--rounds`` times each, fresh model and recorder every time):

* **recorder**: no dashboard;
* **recorder + dashboard**: a ``TelemetryDashboard(trainer)`` attached before the fit.
  No browser: its update thread runs for real (at most ten updates a second, the
  recorder's frames polled once a second) and every comm message is packed the way the
  kernel packs it (JSON plus binary buffers, ``jupyter_client.session.json_packer``) and
  counted, so the Python side and the serialization are measured.

It prints steps/s per mode and their ratio, steps/s over the first and the last fifth
of each run (a dashboard whose polls grew with the run would slow its end), the cost
of each poll of the recorder's frames early and late in the run next to what one
full-table scan costs at the end, and the size of the update messages.

Part 2, the renderer choice (docs/widgets.md, "a small canvas renderer, not plotly.js"),
for six curves of 2,048 points in four panels: the JavaScript each front end loads, and
the Python side of one update (ten new points per curve): this dashboard's binary-buffer
message versus updating a Plotly ``FigureWidget``'s traces, both packed as above. With
``--browser`` (needs Chromium and the ``playwright`` package) the page side is measured
too, in headless Chromium: loading each front end, the first draw, and one update
(this renderer's drawing versus ``Plotly.extendTraces``).

Run: ``python benchmarks/bench_dashboard.py [--steps 20000] [--rounds 2] [--browser]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import comm  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from comm.base_comm import BaseComm  # noqa: E402
from jupyter_client.session import json_packer  # noqa: E402

import spiraltorch_nb as st  # noqa: E402
from spiraltorch_nb.widgets import TelemetryDashboard  # noqa: E402
from spiraltorch_nb.widgets._base import widget_asset  # noqa: E402

#: curves of part 2, by panel: six curves in four panels
CURVES = {"loss": "loss", "val_loss": "loss", "accuracy": "accuracy", "val_accuracy": "accuracy",
          "lr": "lr", "grad_norm": "grad_norm"}
POINTS = 2048
NEW_POINTS = 10


class WireComm(BaseComm):
    """A comm that packs each message as the kernel's session does and records its size."""

    sizes: dict[str, list[int]] = {}
    #: comm id -> sizes of the custom messages only (the dashboard's series updates)
    custom: dict[str, list[int]] = {}

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        packed = json_packer({"data": data, "comm_id": self.comm_id, **keys}) + json_packer(metadata or {})
        size = len(packed) + sum(memoryview(b).nbytes for b in buffers or ())
        if msg_type == "comm_msg":
            WireComm.sizes.setdefault(self.comm_id, []).append(size)
            if isinstance(data, dict) and data.get("method") == "custom":
                WireComm.custom.setdefault(self.comm_id, []).append(size)


def use_wire_comm() -> None:
    comm.create_comm = lambda **kwargs: WireComm(**kwargs)


# ---- part 1: a long fit ------------------------------------------------------------------
def fit_once(steps: int, with_dashboard: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * 4, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    st.manual_seed(0)
    model = st.nn.Sequential(st.nn.Linear(4, 8), st.nn.ReLU(), st.nn.Linear(8, 2))
    rec = st.telemetry.record()
    marks: list[float] = []
    fifth = max(steps // 5, 1)
    clock = st.train.LambdaCallback(on_step_end=lambda t, step, logs: marks.append(time.perf_counter())
                                    if step % fifth == 0 else None)
    trainer = st.train.Trainer(model, "cross_entropy", st.optim.SGD(model.parameters(), lr=0.1),
                               callbacks=[rec, clock], progress=False)
    loader = st.train.DataLoader(x, y, batch_size=4)
    dash = None
    polls: list[tuple[int, float, int]] = []
    if with_dashboard:
        dash = TelemetryDashboard(trainer)
        poll = dash._poll_frames

        def timed_poll(force: bool = False) -> bool:
            before, c0 = dash._last_poll, time.thread_time()  # CPU time of the dashboard's update thread
            changed = poll(force)
            if dash._last_poll != before:  # it read the frames (not skipped as too soon)
                polls.append((trainer.global_step, time.thread_time() - c0, dash._ops_tail.rows_read))
            return changed

        dash._poll_frames = timed_poll  # type: ignore[method-assign]
    t0, cpu0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
    marks.append(t0)
    trainer.fit(loader, epochs=1)
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {"steps_per_s": steps / elapsed,
                           "process_us": (time.process_time() - cpu0) / steps * 1e6,
                           "thread_us": (time.thread_time() - thread0) / steps * 1e6,
                           "ops": rec.ops.height, "dropped": rec.dropped["ops"],
                           "first_fifth": fifth / (marks[1] - marks[0]),
                           "last_fifth": fifth / (marks[-1] - marks[-2])}
    if dash is not None:
        dash.flush()
        sizes = WireComm.sizes.get(dash.comm.comm_id, [])
        updates = WireComm.custom.get(dash.comm.comm_id, [])
        out.update(messages=len(sizes), bytes=sum(sizes), updates=len(updates), mean_msg=statistics.mean(updates),
                   max_msg=max(updates), updates_per_s=len(updates) / elapsed, polls=polls)
        # what each poll cost before it read only the new rows: a filtered scan of the whole tables (on
        # Polars' threads too: process CPU time, taken while nothing else runs)
        last_seq = int(rec.ops["seq"].max()) - 2_000
        last_ns = int(rec.memory["time_ns"].max()) - 1_000_000_000
        c1 = time.process_time()
        (rec.scan("ops").filter(pl.col("seq") > last_seq).group_by("op", "backend")
         .agg(pl.col("duration_ns").sum(), pl.len()).collect())
        rec.scan("memory").filter(pl.col("time_ns") > last_ns).collect()
        out["full_scan_ms"] = (time.process_time() - c1) * 1e3
        dash.close()
    return out


def part1(steps: int, rounds: int) -> None:
    modes = ("recorder", "recorder + dashboard")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for r in range(rounds):
        for mode in (modes if r % 2 == 0 else modes[::-1]):  # alternate which runs first
            runs[mode].append(fit_once(steps, with_dashboard=mode != "recorder"))

    def med(mode: str, key: str) -> float:
        return statistics.median(o[key] for o in runs[mode])

    def paired(key: str) -> float:
        return statistics.median(d[key] / b[key] for d, b in zip(runs[modes[1]], runs[modes[0]], strict=True))

    print(f"Part 1: Trainer fit of a 4-8-2 MLP, batch 4, {steps:,} steps, a Recorder among the callbacks "
          f"({(runs['recorder'][0]['ops'] + runs['recorder'][0]['dropped']) / steps:.0f} ops per step); {rounds} fits per mode, alternated; medians")
    print(f"  {'mode':<22}{'steps/s':>9}{'first fifth':>13}{'last fifth':>12}{'CPU us/step':>13}"
          f"{'training thread':>17}")
    for mode in modes:
        print(f"  {mode:<22}{med(mode, 'steps_per_s'):>9,.0f}{med(mode, 'first_fifth'):>13,.0f}"
              f"{med(mode, 'last_fifth'):>12,.0f}{med(mode, 'process_us'):>13.0f}{med(mode, 'thread_us'):>17.0f}")
    print(f"  with the dashboard (paired per round): steps/s x{paired('steps_per_s'):.3f}, process CPU per step "
          f"x{paired('process_us'):.3f}, training thread CPU per step x{paired('thread_us'):.3f}")
    dash = runs[modes[1]][-1]
    polls = dash["polls"]
    k = max(len(polls) // 5, 1)
    early = statistics.median(p[1] for p in polls[:k]) * 1e3
    late = statistics.median(p[1] for p in polls[-k:]) * 1e3
    print(f"  dashboard traffic: {dash['updates']} updates ({dash['updates_per_s']:.1f}/s) and "
          f"{dash['messages'] - dash['updates']} trait changes, {dash['bytes'] / 1e3:.0f} kB in all; "
          f"per update {dash['mean_msg'] / 1e3:.2f} kB on average, {dash['max_msg'] / 1e3:.1f} kB at most")
    print(f"  polls of the recorder's frames: {len(polls)}, {early:.1f} ms CPU each in the first fifth of the run, "
          f"{late:.1f} ms in the last (converting the staged rows included); {polls[-1][2]:,} op rows read in all "
          f"for {dash['ops']:,} kept ({dash['dropped']:,} dropped by the recorder's ring); one filtered scan of the "
          f"whole tables, as each poll did before, costs {dash['full_scan_ms']:.1f} ms CPU at the end of the run")


# ---- part 2: the renderer choice ---------------------------------------------------------
def curve_points(n: int, start: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    steps = np.arange(start, start + n, dtype=np.float64)
    return steps, {name: np.exp(-steps / (3_000 + 500 * i)) + 0.01 * i for i, name in enumerate(CURVES)}


def ours_per_update(updates: int) -> dict[str, float]:
    rec = st.telemetry.record().start()
    try:
        steps, values = curve_points(POINTS)
        for i, s in enumerate(steps):
            rec.log(step=int(s), **{k: float(v[i]) for k, v in values.items()})
        dash = TelemetryDashboard(rec, capacity=2 * POINTS)
        dash._flusher.stop()  # flushes are driven (and timed) here
        dash.flush()
        comm_id = dash.comm.comm_id
        times = []
        start = POINTS
        for _ in range(updates):
            steps, values = curve_points(NEW_POINTS, start)
            start += NEW_POINTS
            for i, s in enumerate(steps):
                rec.log(step=int(s), **{k: float(v[i]) for k, v in values.items()})
            n_before = len(WireComm.sizes.get(comm_id, []))
            t0 = time.perf_counter()
            dash._flush()
            times.append(time.perf_counter() - t0)
            assert len(WireComm.sizes[comm_id]) == n_before + 1  # one message per update
        sizes = WireComm.sizes[comm_id][-updates:]
        dash.close()
    finally:
        rec.stop()
    return {"ms": statistics.median(times) * 1e3, "bytes": statistics.median(sizes)}


def plotly_per_update(updates: int) -> dict[str, float]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = list(dict.fromkeys(CURVES.values()))
    fig = go.FigureWidget(make_subplots(rows=len(panels), cols=1))
    steps, values = curve_points(POINTS)
    for name, panel in CURVES.items():
        fig.add_scatter(x=steps, y=values[name], name=name, mode="lines", row=panels.index(panel) + 1, col=1)
    comm_id = fig.comm.comm_id
    times = []
    start = POINTS
    xs = {name: steps for name in CURVES}
    ys = dict(values)
    for _ in range(updates):
        new_steps, new_values = curve_points(NEW_POINTS, start)
        start += NEW_POINTS
        n_before = len(WireComm.sizes.get(comm_id, []))
        t0 = time.perf_counter()
        # a FigureWidget has no extendTraces from Python: each trace gets its new (windowed) arrays
        with fig.batch_update():
            for trace in fig.data:
                xs[trace.name] = np.concatenate([xs[trace.name][NEW_POINTS:], new_steps])
                ys[trace.name] = np.concatenate([ys[trace.name][NEW_POINTS:], new_values[trace.name]])
                trace.x = xs[trace.name]
                trace.y = ys[trace.name]
        times.append(time.perf_counter() - t0)
        sent = WireComm.sizes.get(comm_id, [])[n_before:]
        WireComm.sizes.setdefault("plotly-updates", []).append(sum(sent))
    sizes = WireComm.sizes["plotly-updates"][-updates:]
    return {"ms": statistics.median(times) * 1e3, "bytes": statistics.median(sizes)}


def js_payloads() -> dict[str, int]:
    import plotly
    from plotly.basewidget import BaseFigureWidget

    ours = sum(len(widget_asset(f).encode()) for f in ("telemetry_dashboard.js", "telemetry_dashboard.css"))
    esm = BaseFigureWidget._esm
    widget_bundle = Path(esm).stat().st_size if isinstance(esm, str | Path) else len(str(esm).encode())
    plotly_min = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").stat().st_size
    return {"ours": ours, "figurewidget": widget_bundle, "plotly_min": plotly_min}


def part2(updates: int) -> None:
    sizes = js_payloads()
    ours = ours_per_update(updates)
    plotly = plotly_per_update(updates)
    print(f"\nPart 2: six curves of {POINTS:,} points in four panels; one update = {NEW_POINTS} new points per curve; "
          f"medians of {updates} updates")
    print(f"  {'':<44}{'this dashboard':>16}{'plotly FigureWidget':>22}")
    print(f"  {'JavaScript the page loads':<44}{sizes['ours'] / 1e3:>13.0f} kB"
          f"{sizes['figurewidget'] / 1e6:>19.1f} MB   (plotly.min.js alone: {sizes['plotly_min'] / 1e6:.1f} MB)")
    print(f"  {'Python side per update (build + pack)':<44}{ours['ms']:>13.2f} ms{plotly['ms']:>19.2f} ms"
          f"   x{plotly['ms'] / ours['ms']:.0f}")
    print(f"  {'bytes per update on the wire':<44}{ours['bytes'] / 1e3:>13.2f} kB{plotly['bytes'] / 1e3:>19.1f} kB"
          f"   x{plotly['bytes'] / ours['bytes']:.0f}")


# ---- part 2 in a browser (optional) --------------------------------------------------------
_PAGE_SCRIPT = """
async ([src, points, newPoints, curves]) => {
  const t0 = performance.now();
  const url = URL.createObjectURL(new Blob([src], {type: "text/javascript"}));
  const mod = await import(url);
  const loadMs = performance.now() - t0;
  const handlers = {};
  const state = {capacity: 4 * points, title: "bench", status: "", export_status: "", error: "", op_breakdown: []};
  const model = {get: (k) => state[k], on: (e, f) => { (handlers[e] = handlers[e] || []).push(f); },
                 off: () => {}, send: () => {}};
  const root = document.createElement("div");
  root.style.width = "900px";
  document.body.appendChild(root);
  mod.default.render({model, el: root});
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const message = (start, n) => {
    const items = [], buffers = [];
    curves.forEach(([key, panel], c) => {
      const data = new Float64Array(2 * n);
      for (let i = 0; i < n; i++) { data[i] = start + i; data[n + i] = Math.exp(-(start + i) / (3000 + 500 * c)); }
      items.push({key, panel, axis: "step", reset: start === 0, n, tail: false, stride: 1, total: start + n});
      buffers.push(new DataView(data.buffer));
    });
    return [{type: "series", items, status: ""}, buffers];
  };
  const wrap = root.querySelector(".st-dashboard");
  const send = (start, n) => { const [m, b] = message(start, n); for (const f of handlers["msg:custom"]) f(m, b); };
  let t = performance.now();
  send(0, points);
  await frame();
  const firstMs = +wrap.dataset.drawMsTotal;
  const firstWall = performance.now() - t;
  const per = [];
  for (let u = 0; u < 30; u++) {
    const before = +wrap.dataset.drawMsTotal;
    t = performance.now();
    send(points + u * newPoints, newPoints);
    const decode = performance.now() - t;
    await frame();
    per.push([+wrap.dataset.drawMsTotal - before, decode]);
  }
  const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  return {loadMs, firstMs, firstWall, drawMs: med(per.map((p) => p[0])), decodeMs: med(per.map((p) => p[1]))};
}
"""

_PLOTLY_SCRIPT = """
async ([points, newPoints, curves, panels]) => {
  const div = document.createElement("div");
  div.style.width = "900px";
  document.body.appendChild(div);
  const traces = curves.map(([key, panel], c) => {
    const x = [], y = [];
    for (let i = 0; i < points; i++) { x.push(i); y.push(Math.exp(-i / (3000 + 500 * c))); }
    const row = panels.indexOf(panel) + 1;
    return {x, y, name: key, mode: "lines", xaxis: row === 1 ? "x" : `x${row}`, yaxis: row === 1 ? "y" : `y${row}`};
  });
  const layout = {height: 200 * panels.length, grid: {rows: panels.length, columns: 1, pattern: "independent"}};
  let t = performance.now();
  await Plotly.newPlot(div, traces, layout);
  const firstMs = performance.now() - t;
  const per = [];
  for (let u = 0; u < 30; u++) {
    const xs = [], ys = [];
    curves.forEach((_, c) => {
      const x = [], y = [];
      for (let i = 0; i < newPoints; i++) { const s = points + u * newPoints + i; x.push(s); y.push(Math.exp(-s / (3000 + 500 * c))); }
      xs.push(x); ys.push(y);
    });
    t = performance.now();
    await Plotly.extendTraces(div, {x: xs, y: ys}, curves.map((_, c) => c), points);
    per.push(performance.now() - t);
  }
  per.sort((a, b) => a - b);
  return {firstMs, updateMs: per[per.length >> 1]};
}
"""


def part2_browser() -> None:
    import plotly
    from playwright.sync_api import sync_playwright

    chromium = next((p for p in (os.environ.get("CHROMIUM"), "/usr/bin/chromium") if p and Path(p).exists()), None)
    if chromium is None:
        print("\n(--browser: no Chromium found at $CHROMIUM or /usr/bin/chromium; skipped)")
        return
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    curves = [[k, p] for k, p in CURVES.items()]
    panels = list(dict.fromkeys(CURVES.values()))
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1200})
            ours = page.evaluate(_PAGE_SCRIPT, [widget_asset("telemetry_dashboard.js"), POINTS, NEW_POINTS, curves])
            page = browser.new_page(viewport={"width": 1000, "height": 1200})
            t0 = time.perf_counter()
            page.add_script_tag(path=str(plotly_js))
            load_s = time.perf_counter() - t0
            theirs = page.evaluate(_PLOTLY_SCRIPT, [POINTS, NEW_POINTS, curves, panels])
        finally:
            browser.close()
    print("\n  in headless Chromium (medians of 30 updates):")
    print(f"  {'load and parse the front end':<44}{ours['loadMs']:>13.0f} ms{load_s * 1e3:>19.0f} ms")
    print(f"  {'first draw':<44}{ours['firstMs']:>13.0f} ms{theirs['firstMs']:>19.0f} ms")
    print(f"  {'per update (page side)':<44}{ours['drawMs'] + ours['decodeMs']:>13.1f} ms{theirs['updateMs']:>19.1f} ms"
          f"   (this renderer: {ours['drawMs']:.1f} ms drawing + {ours['decodeMs']:.1f} ms decoding; "
          "plotly: Plotly.extendTraces)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20_000, help="optimizer steps per fit")
    ap.add_argument("--rounds", type=int, default=2, help="fits per mode (alternated)")
    ap.add_argument("--updates", type=int, default=100, help="updates timed in part 2")
    ap.add_argument("--browser", action="store_true", help="also measure the page side in headless Chromium")
    ap.add_argument("--skip-fit", action="store_true", help="only part 2")
    args = ap.parse_args()
    use_wire_comm()
    if not args.skip_fit:
        part1(args.steps, args.rounds)
    part2(args.updates)
    if args.browser:
        part2_browser()


if __name__ == "__main__":
    main()
