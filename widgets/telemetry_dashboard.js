// TelemetryDashboard front end: a small canvas chart renderer (no plotly.js, no build
// step, nothing fetched at run time).
//
// Data arrives from Python as custom messages {type: "series", items: [...]} with one
// binary buffer per item: float64 little-endian, n x values then n y values. An item
// either replaces a series (reset) or appends to it; when `tail` is set its last point
// is provisional and replaced by the next message. Python bounds every series (bucket
// means, doubling stride), so the page never holds more than ~capacity points per curve.
// Drawing is batched per animation frame and touches only the panels that changed.

const COLORS = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#e16f24", "#57606a"];
const OVERLAY_STYLE = {
  epoch: { color: "#b6bec7", dash: [2, 3] },
  device: { color: "#bf8700", dash: [] },
  error: { color: "#cf222e", dash: [] },
  event: { color: "#8250df", dash: [1, 3] },
  note: { color: "#0969da", dash: [4, 2] },
};
const PANEL_ORDER = { loss: 0, accuracy: 1, lr: 3 };
const PAD = { left: 52, right: 12, top: 14, bottom: 22 };
const CHART_HEIGHT = 170;
// epoch boundaries drawn per chart at most: beyond it they are thinned (evenly in pixels),
// so hundreds of epochs read as a few labelled marks, not as a dense grid
const MAX_EPOCH_LINES = 20;
const LABEL_HEIGHT = 12;
const LABEL_GAP = 4;

function toF64(buf) {
  // Buffers arrive as DataView (JupyterLab) or ArrayBuffer; copy so the offset is aligned.
  if (buf instanceof ArrayBuffer) return new Float64Array(buf.slice(0));
  if (ArrayBuffer.isView(buf)) {
    return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  }
  return new Float64Array(0);
}

function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return step * mag;
}

function ticks(min, max, count) {
  if (!(max > min)) return [min];
  const step = niceStep(max - min, count);
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(v);
  return out;
}

function fmtTick(v, step) {
  if (Math.abs(v) < step * 1e-6) return "0";
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-4) return v.toExponential(1);
  const decimals = Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, "");
  return v.toPrecision(2);
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function extent(seriesList, key) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of seriesList) {
    const arr = s[key];
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (Number.isFinite(v)) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
  }
  return [lo, hi];
}

function lowerBound(arr, x) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (arr[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// Which overlay lines to draw and where their labels go. Device switches, errors and
// events are always drawn; epoch boundaries are thinned to at most MAX_EPOCH_LINES,
// spaced evenly in pixels. Labels never overlap: the other marks' labels take the first
// free row (above the plot, then inside its top edge on a white backing) and epoch labels
// are written only where the row above the plot is still free.
function layoutOverlays(ctx, overlays, axis, sx, x0, x1, w, pw) {
  const epochs = [];
  const others = [];
  for (const ov of overlays) {
    const at = axis === "time" ? ov.t : ov.step;
    if (at === null || at === undefined || at < x0 || at > x1) continue;
    (ov.kind === "epoch" ? epochs : others).push({ ov, x: Math.round(sx(at)) + 0.5 });
  }
  const gap = Math.max(6, pw / MAX_EPOCH_LINES);
  const shown = [];
  let last = -Infinity;
  for (const m of epochs) {
    if (m.x - last >= gap) {
      shown.push(m);
      last = m.x;
    }
  }
  const rowsY = [1, PAD.top + 2];
  const taken = rowsY.map(() => []);
  const free = (row, a, b) => taken[row].every(([l, r]) => b + LABEL_GAP <= l || a >= r + LABEL_GAP);
  const placed = [];
  const place = (m, rows) => {
    const width = ctx.measureText(m.ov.label).width;
    const lx = Math.max(PAD.left, Math.min(m.x + 2, w - width - 2));
    const row = rows.find((r) => free(r, lx, lx + width));
    if (row === undefined) return;
    taken[row].push([lx, lx + width]);
    placed.push({ ov: m.ov, lx, y: rowsY[row], width });
  };
  ctx.font = "10px system-ui, sans-serif";
  for (const m of others) place(m, [0, 1]);
  for (const m of shown) place(m, [0]);
  return { lines: [...shown, ...others], placed, epochLines: shown.length };
}

// Draw one panel: curves, axes, overlay marks and the hover crosshair.
function drawChart(canvas, seriesList, overlays, axis, hoverX) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 400;
  const h = CHART_HEIGHT;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pw = w - PAD.left - PAD.right;
  const ph = h - PAD.top - PAD.bottom;
  let [x0, x1] = extent(seriesList, "xs");
  let [y0, y1] = extent(seriesList, "ys");
  if (!Number.isFinite(x0)) return null;
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 || 1; y1 += Math.abs(y1) * 0.1 || 1; }
  const ypad = (y1 - y0) * 0.06;
  y0 -= ypad;
  y1 += ypad;
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y) => PAD.top + (1 - (y - y0) / (y1 - y0)) * ph;

  // grid and axes
  ctx.font = "10px system-ui, sans-serif";
  ctx.fillStyle = "#57606a";
  ctx.strokeStyle = "#eaeef2";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  const yt = ticks(y0, y1, 4);
  const ystep = yt.length > 1 ? yt[1] - yt[0] : Math.abs(y1 - y0) || 1;
  for (const t of yt) {
    const y = Math.round(sy(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(PAD.left + pw, y); ctx.stroke();
    ctx.fillText(fmtTick(t, ystep), PAD.left - 4, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const xt = ticks(x0, x1, Math.max(2, Math.floor(pw / 80)));
  const xstep = xt.length > 1 ? xt[1] - xt[0] : 1;
  for (const t of xt) {
    const x = Math.round(sx(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, PAD.top); ctx.lineTo(x, PAD.top + ph); ctx.stroke();
    const label = fmtTick(t, xstep);
    ctx.fillText(axis === "time" ? `${label} s` : label, x, PAD.top + ph + 4);
  }
  ctx.strokeStyle = "#8c959f";
  ctx.strokeRect(PAD.left + 0.5, PAD.top + 0.5, pw, ph);

  // overlays: lines now (under the curves), labels after the curves (on top of them)
  const labels = layoutOverlays(ctx, overlays, axis, sx, x0, x1, w, pw);
  for (const { ov, x } of labels.lines) {
    const style = OVERLAY_STYLE[ov.kind] || OVERLAY_STYLE.event;
    ctx.strokeStyle = style.color;
    ctx.lineWidth = ov.kind === "epoch" ? 1 : 1.5;
    ctx.setLineDash(style.dash);
    ctx.beginPath(); ctx.moveTo(x, PAD.top); ctx.lineTo(x, PAD.top + ph); ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.lineWidth = 1;

  // curves (clipped to the plot area; NaN/inf leave gaps)
  ctx.save();
  ctx.beginPath();
  ctx.rect(PAD.left, PAD.top, pw, ph);
  ctx.clip();
  for (const s of seriesList) {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.setLineDash(s.key.startsWith("val_") ? [5, 3] : []);
    ctx.beginPath();
    let pen = false;
    const { xs, ys } = s;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      const y = ys[i];
      if (!Number.isFinite(y) || !Number.isFinite(x)) { pen = false; continue; }
      if (pen) ctx.lineTo(sx(x), sy(y));
      else { ctx.moveTo(sx(x), sy(y)); pen = true; }
    }
    if (xs.length === 1) ctx.arc(sx(xs[0]), sy(ys[0]), 2, 0, 2 * Math.PI);
    ctx.stroke();
  }
  ctx.restore();
  ctx.setLineDash([]);

  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  for (const { ov, lx, y, width } of labels.placed) {
    const style = OVERLAY_STYLE[ov.kind] || OVERLAY_STYLE.event;
    if (ov.kind !== "epoch") {
      ctx.fillStyle = "rgba(255,255,255,0.9)";
      ctx.fillRect(lx - 1, y - 1, width + 2, LABEL_HEIGHT);
    }
    ctx.fillStyle = style.color;
    ctx.fillText(ov.label, lx, y);
  }
  canvas.dataset.epochLines = String(labels.epochLines);
  canvas.dataset.labels = labels.placed.map((l) => l.ov.label).join("|");

  // hover: crosshair and the nearest value of each curve
  if (hoverX !== null && hoverX >= PAD.left && hoverX <= PAD.left + pw) {
    const xv = x0 + ((hoverX - PAD.left) / pw) * (x1 - x0);
    ctx.strokeStyle = "#57606a";
    ctx.beginPath(); ctx.moveTo(hoverX + 0.5, PAD.top); ctx.lineTo(hoverX + 0.5, PAD.top + ph); ctx.stroke();
    const lines = [axis === "time" ? `t = ${fmt(xv)} s` : `step ${fmt(xv)}`];
    for (const s of seriesList) {
      if (!s.xs.length) continue;
      let i = Math.min(lowerBound(s.xs, xv), s.xs.length - 1);
      if (i > 0 && Math.abs(s.xs[i - 1] - xv) < Math.abs(s.xs[i] - xv)) i -= 1;
      lines.push(`${s.key}: ${fmt(s.ys[i])}`);
    }
    const bw = Math.max(...lines.map((l) => ctx.measureText(l).width)) + 10;
    const bx = hoverX + bw + 12 > w ? hoverX - bw - 6 : hoverX + 6;
    ctx.fillStyle = "rgba(255,255,255,0.92)";
    ctx.fillRect(bx, PAD.top + 2, bw, lines.length * 13 + 6);
    ctx.fillStyle = "#1f2328";
    lines.forEach((l, k) => ctx.fillText(l, bx + 5, PAD.top + 5 + k * 13));
  }
  return { x0, x1, y0, y1 };
}

function render({ model, el: root }) {
  const series = new Map(); // key -> {key, panel, axis, xs, ys, tail, stride, total, color}
  const panels = new Map(); // panel -> {box, canvas, legend, keys:Set, axis, hoverX}
  const dirty = new Set();
  let frame = 0;
  let updates = 0;
  let colorIndex = 0;
  let overlays = []; // marks on the curves, sent incrementally with the points
  let drawMsTotal = 0;
  let drawMsMax = 0;

  const wrap = el("div", "st-dashboard");
  const header = el("div", "st-dash-header");
  const title = el("span", "st-dash-title");
  const status = el("span", "st-dash-status");
  const stats = el("span", "st-dash-stats");
  const exportBtn = el("button", "st-dash-export", "Export");
  exportBtn.type = "button";
  exportBtn.title = "write the frames (Parquet) and this figure (HTML) next to the notebook";
  const exportStatus = el("span", "st-dash-export-status");
  header.append(title, status, stats, exportBtn, exportStatus);
  const empty = el("div", "st-dash-empty", "waiting for data…");
  const grid = el("div", "st-dash-panels");
  const bottom = el("div", "st-dash-bottom");
  const ops = el("div", "st-ops");
  wrap.append(header, empty, grid, bottom);
  root.appendChild(wrap);
  exportBtn.addEventListener("click", () => {
    exportStatus.textContent = "exporting…";
    model.send({ action: "export" });
  });

  function panelFor(name, axis) {
    let p = panels.get(name);
    if (p) return p;
    const box = el("div", "st-chart");
    box.dataset.panel = name;
    box.dataset.axis = axis;
    box.dataset.points = "0";
    const head = el("div", "st-chart-title", axis === "time" ? "memory in use (MiB)" : name);
    const canvas = el("canvas", "st-chart-canvas");
    canvas.style.height = `${CHART_HEIGHT}px`;
    const legend = el("div", "st-chart-legend");
    box.append(head, canvas, legend);
    p = { box, canvas, legend, keys: new Set(), axis, hoverX: null };
    canvas.addEventListener("mousemove", (ev) => {
      p.hoverX = ev.offsetX;
      markDirty(name);
    });
    canvas.addEventListener("mouseleave", () => {
      p.hoverX = null;
      markDirty(name);
    });
    if (axis === "time") {
      bottom.prepend(box);
    } else {
      // loss first, accuracy next, the learning rate last; others in order of arrival
      box.dataset.order = String(PANEL_ORDER[name] ?? 2);
      const after = [...grid.children].find((c) => +c.dataset.order > +box.dataset.order);
      grid.insertBefore(box, after || null);
    }
    panels.set(name, p);
    return p;
  }

  function markDirty(name) {
    dirty.add(name);
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function draw() {
    frame = 0;
    const t0 = performance.now();
    for (const name of dirty) {
      const p = panels.get(name);
      if (!p) continue;
      const list = [...p.keys].map((k) => series.get(k));
      drawChart(p.canvas, list, overlays, p.axis, p.hoverX);
      let points = 0;
      let total = 0;
      p.legend.replaceChildren();
      for (const s of list) {
        points += s.xs.length;
        total += s.total || 0;
        const item = el("span", "st-legend-item");
        item.dataset.series = s.key;
        const swatch = el("span", "st-legend-swatch");
        swatch.style.background = s.color;
        const last = s.ys.length ? fmt(s.ys[s.ys.length - 1]) : "";
        item.append(swatch, el("span", "st-legend-label", `${s.key} ${last}`));
        item.title = `${s.total} points recorded, ${s.xs.length} drawn (1 per ${s.stride})`;
        p.legend.append(item);
      }
      p.box.dataset.points = String(points);
      p.box.dataset.total = String(total);
    }
    dirty.clear();
    empty.hidden = series.size > 0;
    // cost of drawing, readable by tests and by a curious person in the inspector
    const ms = performance.now() - t0;
    drawMsTotal += ms;
    drawMsMax = Math.max(drawMsMax, ms);
    wrap.dataset.drawMsTotal = drawMsTotal.toFixed(1);
    wrap.dataset.drawMsMax = drawMsMax.toFixed(1);
  }

  function onMessage(msg, buffers) {
    if (!msg || msg.type !== "series") return;
    msg.items.forEach((it, i) => {
      const data = toF64(buffers[i]);
      const xs = data.subarray(0, it.n);
      const ys = data.subarray(it.n, 2 * it.n);
      let s = series.get(it.key);
      if (!s) {
        const color = it.axis === "time" ? COLORS[(colorIndex++ + 3) % COLORS.length] : COLORS[colorIndex++ % COLORS.length];
        s = { key: it.key, panel: it.panel, axis: it.axis, xs: [], ys: [], tail: false, color };
        series.set(it.key, s);
        panelFor(it.panel, it.axis).keys.add(it.key);
      }
      if (it.reset) {
        s.xs = Array.from(xs);
        s.ys = Array.from(ys);
      } else {
        if (s.tail) { s.xs.pop(); s.ys.pop(); }
        for (let k = 0; k < xs.length; k++) { s.xs.push(xs[k]); s.ys.push(ys[k]); }
      }
      // a safety net only: Python never sends more than `capacity` points per series
      const cap = 4 * (model.get("capacity") || 2048);
      if (s.xs.length > cap) { s.xs = s.xs.slice(-cap); s.ys = s.ys.slice(-cap); }
      s.tail = it.tail;
      s.stride = it.stride;
      s.total = it.total;
      markDirty(it.panel);
    });
    if (msg.status) status.textContent = msg.status;
    if (msg.overlays) {
      overlays = msg.overlays_reset ? msg.overlays.slice() : overlays.concat(msg.overlays);
      for (const name of panels.keys()) markDirty(name);
    }
    updates += 1;
    wrap.dataset.updates = String(updates);
    stats.textContent = `${updates} updates`;
  }

  function drawOps() {
    const rows = model.get("op_breakdown") || [];
    ops.replaceChildren(el("div", "st-ops-title", "time per op"));
    ops.hidden = !rows.length; // a source without a recorder has no per-op times
    const max = Math.max(1e-9, ...rows.map((r) => r.total_ms));
    for (const r of rows) {
      const row = el("div", "st-op-row");
      row.dataset.op = r.op;
      const label = el("span", "st-op-label", `${r.op} · ${r.backend}`);
      const barBox = el("span", "st-op-bar-box");
      const bar = el("span", "st-op-bar");
      bar.style.width = `${(100 * r.total_ms) / max}%`;
      barBox.append(bar);
      const value = el("span", "st-op-value", `${fmt(r.total_ms)} ms · ${(100 * r.share).toFixed(0)}%`);
      row.title = `${r.count} calls`;
      row.append(label, barBox, value);
      ops.append(row);
    }
    if (!ops.parentNode) bottom.append(ops);
  }

  function drawHeader() {
    title.textContent = model.get("title");
    status.textContent = model.get("status") || "";
    exportStatus.textContent = model.get("export_status") || "";
    const err = model.get("error");
    if (err) exportStatus.textContent = err;
  }

  function redrawAll() {
    for (const name of panels.keys()) markDirty(name);
  }

  model.on("msg:custom", onMessage);
  model.on("change:op_breakdown", drawOps);
  for (const name of ["status", "export_status", "title", "error"]) model.on(`change:${name}`, drawHeader);
  const resize = new ResizeObserver(redrawAll);
  resize.observe(wrap);
  drawHeader();
  drawOps();
  model.send({ action: "snapshot" });

  return () => {
    resize.disconnect();
    if (frame) cancelAnimationFrame(frame);
    model.off("msg:custom", onMessage);
    model.off("change:op_breakdown", drawOps);
    for (const name of ["status", "export_status", "title", "error"]) model.off(`change:${name}`, drawHeader);
  };
}

export default { render };
