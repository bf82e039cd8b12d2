// DeviceSwitcher front end: renders the device cards from the model's traits and
// forwards clicks to Python as {action: "select", name}. Python decides everything
// (availability, moving the model, pending state); this file only draws it.

function fmtBytes(n) {
  if (n === null || n === undefined || !(n > 0)) return "";
  const units = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
  for (const [unit, size] of units) if (n >= size) return `${(n / size).toFixed(1)} ${unit}`;
  return `${n} B`;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "";
  return ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(2)} ms`;
}

// Where the readout's figures come from, in words: "from telemetry" when both come from the
// recorder, else each figure with its own source ("trainer events", "backend", "process RSS").
function sourceText(r) {
  const step = r.step_source;
  const mem = r.memory_source;
  if (step && step === mem) return `from ${step}`;
  const parts = [];
  if (step) parts.push(`step time from ${step}`);
  if (mem) parts.push(`memory from ${mem}`);
  return parts.join(" · ");
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el: root }) {
  const wrap = el("div", "st-device-switcher");
  const header = el("div", "st-ds-header");
  const title = el("span", "st-ds-title", "Devices");
  const current = el("span", "st-ds-current");
  const refresh = el("button", "st-ds-refresh", "↻");
  refresh.title = "probe the devices again";
  refresh.addEventListener("click", () => model.send({ action: "refresh" }));
  header.append(title, current, refresh);
  const list = el("div", "st-device-list");
  const status = el("div", "st-ds-status");
  const error = el("div", "st-ds-error");
  error.setAttribute("role", "alert");
  wrap.append(header, list, status, error);
  root.appendChild(wrap);

  function draw() {
    const devices = model.get("devices") || [];
    const cur = model.get("current");
    const pending = model.get("pending");
    const readout = model.get("readout") || {};
    current.textContent = pending ? `on ${cur} → ${pending} (pending)` : `on ${cur}`;
    list.replaceChildren();
    for (const d of devices) {
      let state = d.available ? "available" : "unavailable";
      if (d.name === cur) state = "current";
      if (d.name === pending) state = "pending";
      const card = el("button", "st-device");
      card.type = "button";
      card.dataset.device = d.name;
      card.dataset.state = state;
      card.title = d.available ? `switch to ${d.name}` : d.reason;
      const top = el("div", "st-device-top");
      top.append(el("span", "st-device-name", d.name));
      const badge = { current: "current", pending: "pending…", available: "", unavailable: "unavailable" }[state];
      if (badge) top.append(el("span", `st-device-badge st-badge-${state}`, badge));
      card.append(top, el("div", "st-device-desc", d.description));
      const r = readout[d.name];
      if (r) {
        const parts = [];
        if (r.step_ms !== null && r.step_ms !== undefined) parts.push(`step ${fmtMs(r.step_ms)}`);
        if (r.steps) parts.push(`${r.steps} steps`);
        const mem = fmtBytes(r.memory_bytes);
        if (mem) parts.push(`${mem} in use`);
        card.append(el("div", "st-device-readout", parts.join(" · ")));
        const src = sourceText(r);
        if (src) {
          const line = el("div", "st-device-readout-source", src);
          line.dataset.step = r.step_source || "";
          line.dataset.memory = r.memory_source || "";
          card.append(line);
        }
      }
      card.addEventListener("click", () => model.send({ action: "select", name: d.name }));
      list.append(card);
    }
    status.textContent = model.get("status") || "";
    const err = model.get("error") || "";
    error.textContent = err;
    error.hidden = !err;
  }

  const events = ["devices", "current", "pending", "readout", "status", "error"];
  for (const name of events) model.on(`change:${name}`, draw);
  draw();
  return () => {
    for (const name of events) model.off(`change:${name}`, draw);
  };
}

export default { render };
