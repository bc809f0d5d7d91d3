// Zone editor: draw and edit zones (polygons) and lines on a camera's snapshot, attach rules, and save
// them into the device's desired config. Coordinates are kept normalised to the frame ([0,1], origin
// top-left) exactly as the device config wants them; pixels exist only while drawing.
(function () {
  "use strict";
  const root = document.getElementById("zone-editor");
  if (!root) return;
  // Only this camera's zones and lines come and go; the server merges them into its newest config.
  const camera = JSON.parse(document.getElementById("camera-json").textContent);
  // The page's texts in the reader's language, from the same catalogue as the page (see base.html).
  const MESSAGES = JSON.parse((document.getElementById("i18n-messages") || {}).textContent || "{}");
  const _ = (text) => MESSAGES[text] || text;
  camera.zones = camera.zones || [];
  camera.lines = camera.lines || [];

  // What the codes are called (the same catalogue texts as matthan/vocabulary.py); the value stays the code.
  const NAMES = {
    intrusion: _("Intrusion into a restricted area"),
    loitering: _("Loitering"),
    crowd: _("Crowd gathering"),
    illegal_parking: _("Illegal parking"),
    encroachment: _("Sidewalk encroachment"),
    wrong_way: _("Wrong-way traffic"),
    up: _("↑ up"),
    down: _("↓ down"),
    left: _("← left"),
    right: _("→ right"),
  };
  const ZONE_RULES = ["intrusion", "loitering", "crowd", "illegal_parking", "encroachment"];
  const LINE_RULES = ["wrong_way"];
  // Sensible starting values; each is what docs/design.md's example config uses.
  const DEFAULTS = {
    intrusion: { labels: ["person"] },
    loitering: { labels: ["person"], min_duration_s: 120 },
    crowd: { labels: ["person"], min_count: 6, min_duration_s: 10 },
    illegal_parking: { labels: ["car", "truck", "bus", "motorcycle"], min_duration_s: 60 },
    encroachment: { labels: ["person"], min_duration_s: 120 },
    wrong_way: { labels: ["car", "motorcycle"], direction: "down" },
  };
  const PARAMS = {
    intrusion: ["min_duration_s"],
    loitering: ["min_duration_s"],
    crowd: ["min_count", "min_duration_s"],
    illegal_parking: ["min_duration_s"],
    encroachment: ["min_duration_s"],
    wrong_way: ["direction"],
  };
  const NAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,62})$/;

  const stage = root.querySelector(".stage");
  const svg = stage.querySelector("svg");
  const listEl = document.getElementById("shape-list");
  const propsEl = document.getElementById("shape-props");
  const preview = document.getElementById("config-preview");
  const status = document.getElementById("save-status");
  const modeButtons = root.querySelectorAll("[data-mode]");

  let mode = "select"; // select | zone | line
  let draft = []; // points of the shape being drawn
  let selected = null; // {kind: "zone"|"line", index}
  let drag = null; // {pointIndex | null, start, orig}
  let dirty = false;

  const NS = "http://www.w3.org/2000/svg";
  const size = () => ({ w: stage.clientWidth, h: stage.clientHeight });
  const clamp = (v) => Math.min(1, Math.max(0, v));
  const round = (v) => Math.round(v * 10000) / 10000;
  function toNorm(evt) {
    const r = svg.getBoundingClientRect();
    return [round(clamp((evt.clientX - r.left) / r.width)), round(clamp((evt.clientY - r.top) / r.height))];
  }
  const shapes = () => [
    ...camera.zones.map((z, i) => ({ kind: "zone", index: i, obj: z, pts: z.polygon })),
    ...camera.lines.map((l, i) => ({ kind: "line", index: i, obj: l, pts: l.points })),
  ];
  const current = () =>
    selected && (selected.kind === "zone" ? camera.zones : camera.lines)[selected.index];
  const isSel = (s) => selected && selected.kind === s.kind && selected.index === s.index;

  function el(tag, attrs, parent) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (parent) parent.appendChild(n);
    return n;
  }

  function uniqueName(base) {
    const taken = new Set([...camera.zones, ...camera.lines].map((s) => s.name));
    for (let i = 1; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
  }

  // ---- drawing -------------------------------------------------------------------------------
  function render() {
    const { w, h } = size();
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.replaceChildren();
    const px = (p) => `${p[0] * w},${p[1] * h}`;
    for (const s of shapes()) {
      const cls = `shape ${s.kind === "line" ? "line" : ""} ${isSel(s) ? "sel" : ""}`;
      const node =
        s.kind === "zone"
          ? el("polygon", { points: s.pts.map(px).join(" "), class: cls }, svg)
          : el("polyline", { points: s.pts.map(px).join(" "), class: cls }, svg);
      node.dataset.kind = s.kind;
      node.dataset.index = s.index;
      const cx = (s.pts.reduce((a, p) => a + p[0], 0) / s.pts.length) * w;
      const cy = (s.pts.reduce((a, p) => a + p[1], 0) / s.pts.length) * h;
      const tag = el("text", { x: cx, y: cy, class: "tag", "text-anchor": "middle" }, svg);
      tag.textContent = s.obj.name + (s.kind === "line" ? directionArrow(s.obj) : "");
      tag.style.pointerEvents = "none";
      if (isSel(s)) {
        s.pts.forEach((p, i) => {
          const hnd = el("circle", { cx: p[0] * w, cy: p[1] * h, r: 7, class: "handle" }, svg);
          hnd.dataset.point = i;
        });
      }
    }
    if (draft.length) {
      const pts = draft.map(px).join(" ");
      el(mode === "line" ? "polyline" : "polygon", { points: pts, class: "draft" }, svg);
      draft.forEach((p) => el("circle", { cx: p[0] * w, cy: p[1] * h, r: 5, class: "handle" }, svg));
    }
    renderList();
    renderPreview();
  }

  function directionArrow(line) {
    const r = (line.rules || []).find((x) => x.type === "wrong_way");
    return r ? { up: " ↑", down: " ↓", left: " ←", right: " →" }[r.direction] || "" : "";
  }

  function renderList() {
    listEl.replaceChildren();
    for (const s of shapes()) {
      const li = document.createElement("li");
      li.className = isSel(s) ? "sel" : "";
      const rules = (s.obj.rules || []).map((r) => NAMES[r.type] || r.type).join(", ") || _("no rules");
      li.textContent = `${s.kind === "zone" ? "▱" : "╱"} ${s.obj.name} — ${rules}`;
      li.dataset.name = s.obj.name;
      li.onclick = () => select({ kind: s.kind, index: s.index });
      listEl.appendChild(li);
    }
    if (!listEl.children.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = _("No zones or lines yet: pick “Draw zone” and click on the image.");
      listEl.appendChild(li);
    }
  }

  function renderPreview() {
    preview.textContent = JSON.stringify({ zones: camera.zones, lines: camera.lines }, null, 1);
  }

  // ---- properties panel ----------------------------------------------------------------------
  function field(labelText, input) {
    const l = document.createElement("label");
    l.className = "f";
    l.textContent = labelText;
    l.appendChild(input);
    return l;
  }
  function input(type, value, onChange, attrs) {
    const i = document.createElement("input");
    i.type = type;
    i.value = value === undefined || value === null ? "" : value;
    Object.assign(i, attrs || {});
    i.addEventListener("input", () => {
      onChange(i.value);
      changed(false);
    });
    return i;
  }
  function selectBox(options, value, onChange) {
    const s = document.createElement("select");
    for (const o of options) s.add(new Option(NAMES[o] || o, o, false, o === value));
    s.addEventListener("change", () => onChange(s.value));
    return s;
  }
  function numberOrDrop(obj, key) {
    return (v) => {
      if (v.trim() === "") delete obj[key];
      else obj[key] = key === "min_count" ? parseInt(v, 10) : parseFloat(v);
    };
  }

  function renderProps() {
    propsEl.replaceChildren();
    const shape = current();
    if (!shape) {
      // Not in a template literal: Babel's extractor does not look inside those.
      const hint = document.createElement("p");
      hint.className = "muted";
      hint.textContent = _("Select a zone or line to name it and give it rules.");
      propsEl.replaceChildren(hint);
      return;
    }
    const isZone = selected.kind === "zone";
    const h = document.createElement("h2");
    h.textContent = isZone ? _("Zone") : _("Line");
    propsEl.appendChild(h);
    const name = input("text", shape.name, (v) => (shape.name = v.trim()), { name: "shape-name" });
    name.addEventListener("change", () => render());
    propsEl.appendChild(field(_("Name (a-z, 0-9, -)"), name));
    shape.rules = shape.rules || [];
    shape.rules.forEach((rule, ri) => propsEl.appendChild(ruleBox(shape, rule, ri, isZone)));
    const row = document.createElement("div");
    row.className = "row";
    const pick = selectBox(isZone ? ZONE_RULES : LINE_RULES, isZone ? "intrusion" : "wrong_way", () => {});
    pick.name = "new-rule-type";
    const add = document.createElement("button");
    add.type = "button";
    add.textContent = _("Add rule");
    add.className = "secondary";
    add.onclick = () => {
      shape.rules.push({ type: pick.value, ...structuredClone(DEFAULTS[pick.value]) });
      changed(true);
    };
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = isZone ? _("Delete zone") : _("Delete line");
    del.className = "danger";
    del.onclick = deleteSelected;
    row.append(pick, add, document.createElement("span"), del);
    row.children[2].className = "spacer";
    propsEl.appendChild(row);
  }

  function ruleBox(shape, rule, ri, isZone) {
    const box = document.createElement("div");
    box.className = "rule";
    box.dataset.rule = rule.type;
    const type = selectBox(isZone ? ZONE_RULES : LINE_RULES, rule.type, (v) => {
      shape.rules[ri] = { type: v, ...structuredClone(DEFAULTS[v]), name: rule.name };
      if (!shape.rules[ri].name) delete shape.rules[ri].name;
      changed(true);
    });
    box.appendChild(field(_("Rule"), type));
    const labels = input("text", (rule.labels || []).join(", "), (v) => {
      rule.labels = v.split(",").map((x) => x.trim()).filter(Boolean);
    });
    box.appendChild(field(_("Labels"), labels));
    for (const p of PARAMS[rule.type]) {
      if (p === "direction") {
        box.appendChild(field(_("Allowed direction"), selectBox(["up", "down", "left", "right"], rule.direction, (v) => {
          rule.direction = v;
          changed(false);
          render();
        })));
      } else {
        const label = p === "min_count" ? _("Min. objects") : _("Min. duration (s)");
        box.appendChild(field(label, input("number", rule[p], numberOrDrop(rule, p), { name: p, min: 0, step: "any" })));
      }
    }
    box.appendChild(field(_("Min. score"), input("number", rule.min_score, numberOrDrop(rule, "min_score"),
      { min: 0, max: 1, step: 0.05, placeholder: _("camera default") })));
    box.appendChild(field(_("Cooldown (s)"), input("number", rule.cooldown_s, numberOrDrop(rule, "cooldown_s"),
      { min: 0, step: "any", placeholder: "0" })));
    const sched = input("text", (rule.schedule || []).join(", "), (v) => {
      const parts = v.split(",").map((x) => x.trim()).filter(Boolean);
      if (parts.length) rule.schedule = parts;
      else delete rule.schedule;
    }, { placeholder: _("always, or 22:00-06:00") });
    const sf = field(_("Active hours"), sched);
    sf.classList.add("full");
    box.appendChild(sf);
    const rm = document.createElement("button");
    rm.type = "button";
    rm.className = "secondary full";
    rm.textContent = _("Remove rule");
    rm.onclick = () => {
      shape.rules.splice(ri, 1);
      changed(true);
    };
    box.appendChild(rm);
    return box;
  }

  // ---- state changes -------------------------------------------------------------------------
  function changed(rebuildProps) {
    dirty = true;
    status.textContent = _("Unsaved changes.");
    status.className = "flash";
    if (rebuildProps) renderProps();
    render();
  }
  function select(sel) {
    selected = sel;
    renderProps();
    render();
  }
  function setMode(m) {
    mode = m;
    draft = [];
    modeButtons.forEach((b) => b.classList.toggle("on", b.dataset.mode === m));
    render();
  }
  function deleteSelected() {
    if (!selected) return;
    (selected.kind === "zone" ? camera.zones : camera.lines).splice(selected.index, 1);
    selected = null;
    changed(true);
  }
  function finishDraft() {
    if (mode === "zone" && draft.length >= 3) {
      camera.zones.push({ name: uniqueName("zone"), polygon: draft, rules: [] });
      const index = camera.zones.length - 1;
      draft = [];
      setMode("select");
      select({ kind: "zone", index });
      changed(true);
    } else if (mode === "line" && draft.length === 2) {
      camera.lines.push({ name: uniqueName("line"), points: draft, rules: [] });
      const index = camera.lines.length - 1;
      draft = [];
      setMode("select");
      select({ kind: "line", index });
      changed(true);
    }
  }

  // ---- pointer -------------------------------------------------------------------------------
  svg.addEventListener("pointerdown", (evt) => {
    const p = toNorm(evt);
    if (mode === "zone" || mode === "line") {
      const { w, h } = size();
      const first = draft[0];
      if (mode === "zone" && first && draft.length >= 3 &&
          Math.hypot((first[0] - p[0]) * w, (first[1] - p[1]) * h) < 10) {
        finishDraft();
        return;
      }
      draft.push(p);
      if (mode === "line" && draft.length === 2) finishDraft();
      else render();
      return;
    }
    const t = evt.target;
    if (t.dataset.point !== undefined && selected) {
      drag = { point: parseInt(t.dataset.point, 10) };
    } else if (t.dataset.kind) {
      select({ kind: t.dataset.kind, index: parseInt(t.dataset.index, 10) });
      drag = { point: null, start: p, orig: structuredClone(shapePoints()) };
    } else {
      select(null);
      return;
    }
    svg.setPointerCapture(evt.pointerId);
  });
  svg.addEventListener("pointermove", (evt) => {
    if (!drag || !selected) return;
    const p = toNorm(evt);
    const pts = shapePoints();
    if (drag.point !== null) {
      pts[drag.point] = p;
    } else {
      // Move the whole shape, stopping at the frame's edge rather than squashing it.
      let dx = p[0] - drag.start[0];
      let dy = p[1] - drag.start[1];
      for (const [x, y] of drag.orig) {
        dx = Math.min(Math.max(dx, -x), 1 - x);
        dy = Math.min(Math.max(dy, -y), 1 - y);
      }
      drag.orig.forEach(([x, y], i) => (pts[i] = [round(x + dx), round(y + dy)]));
    }
    dirty = true;
    render();
  });
  svg.addEventListener("pointerup", () => {
    if (drag && dirty) changed(false);
    drag = null;
  });
  svg.addEventListener("dblclick", (evt) => {
    const t = evt.target;
    if (mode === "zone") return finishDraft();
    // Double-click a corner of a zone to remove it (a zone keeps at least three).
    if (t.dataset.point !== undefined && selected && selected.kind === "zone" && shapePoints().length > 3) {
      shapePoints().splice(parseInt(t.dataset.point, 10), 1);
      changed(false);
    }
  });
  function shapePoints() {
    const s = current();
    return selected.kind === "zone" ? s.polygon : s.points;
  }

  document.addEventListener("keydown", (evt) => {
    if (evt.target.closest && evt.target.closest("input, select, textarea")) return;
    if (evt.key === "Escape") setMode("select");
    else if (evt.key === "Enter") finishDraft();
    else if ((evt.key === "Delete" || evt.key === "Backspace") && selected) deleteSelected();
  });
  modeButtons.forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
  document.getElementById("finish-shape").addEventListener("click", finishDraft);
  window.addEventListener("resize", render);
  const img = stage.querySelector("img");
  if (img && !img.complete) img.addEventListener("load", render);
  window.addEventListener("beforeunload", (evt) => {
    if (dirty) evt.preventDefault();
  });

  // ---- save ----------------------------------------------------------------------------------
  function localProblems() {
    const names = [...camera.zones, ...camera.lines].map((s) => s.name);
    const bad = names.filter((n) => !NAME_RE.test(n));
    if (bad.length) return _("names must be lower-case letters, digits and dashes: {names}").replace("{names}", bad.join(", "));
    const dup = names.filter((n, i) => names.indexOf(n) !== i);
    if (dup.length) return _("names used twice: {names}").replace("{names}", dup.join(", "));
    return null;
  }
  document.getElementById("save-zones").addEventListener("click", async () => {
    const problem = localProblems();
    if (problem) {
      status.textContent = problem;
      status.className = "flash error";
      return;
    }
    status.textContent = _("Saving…");
    status.className = "flash";
    const resp = await fetch(root.dataset.saveUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf },
      body: JSON.stringify({
        zones: camera.zones,
        lines: camera.lines,
        base_version: Number(root.dataset.version) || null,
      }),
      credentials: "same-origin",
    });
    if (resp.redirected) {
      status.textContent = _("Your session has ended: sign in again in another tab, then save again here.");
      status.className = "flash error";
      return;
    }
    let body = {};
    try {
      body = await resp.json();
    } catch (e) {
      body = { detail: `HTTP ${resp.status}` };
    }
    if (resp.ok) {
      dirty = false;
      root.dataset.version = body.version;
      status.textContent = _("Saved as desired config version {version}; the device picks it up next.").replace(
        "{version}",
        body.version,
      );
      status.className = "flash ok";
      document.dispatchEvent(new CustomEvent("console:refresh"));
    } else {
      status.textContent = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      status.className = "flash error";
    }
  });

  setMode("select");
  renderProps();
  render();
})();
