// PipelineEditor front end: palette, stage cards with forms generated from each module's
// parameter schema, inferred shapes and inline errors. Every edit is sent to Python as an
// action ({action: "set_param", index, key, value} ...); Python validates, infers shapes
// and sends the new state back, which this file renders. Values are sent as typed
// (strings from text fields, booleans from checkboxes): Python converts them.

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function shapeText(shape) {
  return shape ? `(${shape.join(", ")})` : "";
}

function valueText(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function render({ model, el: root }) {
  const wrap = el("div", "st-pipeline-editor");
  const header = el("div", "st-pe-header");
  const title = el("span", "st-pe-title", "Pipeline");
  const shapeLabel = el("label", "st-pe-shape-label", "input shape ");
  const shapeInput = el("input", "st-input-shape");
  shapeInput.placeholder = "e.g. 32, 784";
  shapeInput.size = 14;
  shapeLabel.append(shapeInput);
  const summary = el("span", "st-pe-summary");
  header.append(title, shapeLabel, summary);
  const inputError = el("div", "st-pe-input-error");
  const body = el("div", "st-pe-body");
  const palette = el("div", "st-palette");
  const stagesBox = el("div", "st-stages");
  body.append(palette, stagesBox);
  const configBox = el("details", "st-pe-config");
  const configSummary = el("summary", "", "config (JSON)");
  const configPre = el("pre", "st-pe-config-json");
  configBox.append(configSummary, configPre);
  const error = el("div", "st-pe-error");
  wrap.append(header, inputError, body, configBox, error);
  root.appendChild(wrap);

  const send = (msg) => model.send(msg);
  shapeInput.addEventListener("change", () => send({ action: "set_input_shape", shape: shapeInput.value }));
  shapeInput.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") send({ action: "set_input_shape", shape: shapeInput.value });
  });
  let filter = "";
  const search = el("input", "st-palette-search");
  search.placeholder = "filter modules";
  search.addEventListener("input", () => {
    filter = search.value.trim().toLowerCase();
    drawPalette();
  });

  function schemas() {
    const out = {};
    const pal = model.get("palette") || {};
    for (const items of Object.values(pal)) for (const it of items) out[it.name] = it;
    return out;
  }

  function drawPalette() {
    const pal = model.get("palette") || {};
    const groups = [];
    for (const [category, items] of Object.entries(pal)) {
      const shown = items.filter((it) => !filter || `${it.name} ${it.description}`.toLowerCase().includes(filter));
      if (!shown.length) continue;
      const group = el("details", "st-palette-group");
      group.open = true;
      group.dataset.category = category;
      group.append(el("summary", "st-palette-category", category));
      for (const it of shown) {
        const item = el("button", "st-palette-item", it.name);
        item.type = "button";
        item.dataset.module = it.name;
        item.title = it.description || it.name;
        item.addEventListener("click", () => send({ action: "add_stage", name: it.name }));
        group.append(item);
      }
      groups.push(group);
    }
    palette.replaceChildren(el("div", "st-palette-title", "modules"), search, ...groups);
  }

  function field(index, spec, params, errs) {
    const box = el("div", "st-field");
    box.dataset.field = spec.name;
    const label = el("label", "st-field-label", spec.name);
    label.title = `${spec.type}${spec.required ? ", required" : `, default ${valueText(spec.default)}`}`;
    let input;
    const has = Object.prototype.hasOwnProperty.call(params, spec.name);
    if (spec.type === "bool") {
      input = el("input", "st-field-input");
      input.type = "checkbox";
      input.checked = has ? params[spec.name] === true : spec.default === true;
      input.addEventListener("change", () => send({ action: "set_param", i: index, key: spec.name, value: input.checked }));
    } else {
      input = el("input", "st-field-input");
      input.type = "text";
      input.value = has ? valueText(params[spec.name]) : "";
      input.placeholder = spec.required ? "required" : valueText(spec.default);
      let sent = null;
      const commit = () => {
        if (sent === input.value) return; // Enter then blur: send once
        sent = input.value;
        send({ action: "set_param", i: index, key: spec.name, value: input.value });
      };
      input.addEventListener("change", commit);
      input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") commit(); });
    }
    input.name = spec.name;
    input.dataset.type = spec.type;
    label.append(input);
    box.append(label);
    if (errs && errs[spec.name]) {
      box.classList.add("st-field-invalid");
      box.append(el("div", "st-field-error", errs[spec.name]));
    }
    return box;
  }

  function drawStages() {
    const stages = model.get("stages") || [];
    const errors = model.get("errors") || {};
    const shapes = model.get("shapes") || [];
    const known = schemas();
    // keep focus on the field being edited across the re-render
    const active = document.activeElement;
    let focus = null;
    if (active && stagesBox.contains(active) && active.name) {
      const card = active.closest(".st-stage");
      focus = card ? [card.dataset.index, active.name] : null;
    }
    stagesBox.replaceChildren();
    if (!stages.length) stagesBox.append(el("div", "st-stages-empty", "click a module on the left to add a stage"));
    stages.forEach((stage, i) => {
      const errs = errors[i] || errors[String(i)] || {};
      const card = el("div", "st-stage");
      card.dataset.index = String(i);
      card.dataset.module = stage.name;
      if (Object.keys(errs).length) card.classList.add("st-stage-invalid");
      const head = el("div", "st-stage-head");
      head.append(el("span", "st-stage-index", String(i)), el("span", "st-stage-name", stage.name));
      const sh = shapes[i];
      const shape = el("span", "st-stage-shape", sh ? `→ ${shapeText(sh.output_shape)}` : "");
      const count = el("span", "st-stage-params", sh ? `${sh.params.toLocaleString()} params` : "");
      head.append(shape, count);
      const tools = el("span", "st-stage-tools");
      const mk = (cls, text, titleText, handler, disabled) => {
        const b = el("button", cls, text);
        b.type = "button";
        b.title = titleText;
        b.disabled = disabled;
        b.addEventListener("click", handler);
        return b;
      };
      tools.append(
        mk("st-stage-up", "↑", "move up", () => send({ action: "move_stage", i, j: i - 1 }), i === 0),
        mk("st-stage-down", "↓", "move down", () => send({ action: "move_stage", i, j: i + 1 }), i === stages.length - 1),
        mk("st-stage-remove", "✕", "remove", () => send({ action: "remove_stage", i }), false),
      );
      head.append(tools);
      card.append(head);
      for (const key of ["name", "params", "input_shape"]) {
        if (errs[key]) card.append(el("div", "st-stage-error", errs[key]));
      }
      const spec = known[stage.name];
      if (spec && spec.params.length) {
        const form = el("div", "st-stage-form");
        for (const p of spec.params) form.append(field(i, p, stage.params || {}, errs));
        // parameters given but not in the schema are shown so they can be cleared
        for (const key of Object.keys(stage.params || {})) {
          if (!spec.params.some((p) => p.name === key)) {
            form.append(field(i, { name: key, type: "any", required: false, default: null }, stage.params, errs));
          }
        }
        card.append(form);
      }
      stagesBox.append(card);
    });
    if (focus) {
      const target = stagesBox.querySelector(`.st-stage[data-index="${focus[0]}"] input[name="${focus[1]}"]`);
      if (target) target.focus();
    }
    configPre.textContent = JSON.stringify({ version: 1, stages }, null, 1);
  }

  function drawHeader() {
    const shape = model.get("input_shape");
    if (document.activeElement !== shapeInput) shapeInput.value = shape ? shape.join(", ") : "";
    summary.textContent = model.get("summary") || "";
    const ie = model.get("input_error") || "";
    inputError.textContent = ie;
    inputError.hidden = !ie;
    const err = model.get("error") || "";
    error.textContent = err;
    error.hidden = !err;
  }

  const onPalette = () => { drawPalette(); drawStages(); };
  model.on("change:palette", onPalette);
  for (const name of ["stages", "errors", "shapes"]) model.on(`change:${name}`, drawStages);
  for (const name of ["input_shape", "summary", "input_error", "error"]) model.on(`change:${name}`, drawHeader);
  drawPalette();
  drawStages();
  drawHeader();
  send({ action: "refresh" }); // modules registered since the editor was created appear now

  return () => {
    model.off("change:palette", onPalette);
    for (const name of ["stages", "errors", "shapes"]) model.off(`change:${name}`, drawStages);
    for (const name of ["input_shape", "summary", "input_error", "error"]) model.off(`change:${name}`, drawHeader);
  };
}

export default { render };
