"use strict";
// Compare: runs' curves overlaid and arguments side by side; for a sweep, parallel coordinates and
// a scatter of each argument against a chosen metric.

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

// An axis for the values of one column: numeric (min..max) or categorical (evenly spaced).
function axisFor(values) {
  const present = values.filter((v) => v !== undefined && v !== null);
  if (present.length && present.every(isNum)) {
    const lo = Math.min(...present), hi = Math.max(...present);
    if (lo > 0 && hi / lo >= 100) {  // e.g. C in 0.01 .. 100: a log axis
      const l = Math.log10(lo), r = Math.log10(hi);
      return { numeric: true, pos: (v) => (isNum(v) && v > 0 ? (Math.log10(v) - l) / (r - l) : null), ticks: [[0, fmtValue(lo)], [1, fmtValue(hi)]] };
    }
    return { numeric: true, pos: (v) => (isNum(v) ? (hi === lo ? 0.5 : (v - lo) / (hi - lo)) : null), ticks: [[0, fmtValue(lo)], [1, fmtValue(hi)]] };
  }
  const cats = [...new Set(present.map((v) => String(v)))].sort();
  const at = (i) => (cats.length === 1 ? 0.5 : i / (cats.length - 1));
  return { numeric: false, pos: (v) => (v === undefined || v === null ? null : at(cats.indexOf(String(v)))), ticks: cats.map((c, i) => [at(i), c]) };
}

function colorFor(t) {
  // blue (low) -> orange (high)
  const a = [43, 108, 176], b = [221, 107, 32];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * (isNum(t) ? t : 0.5)));
  return `rgb(${c.join(",")})`;
}

function parallelCoordinates(children, args, metric) {
  const cols = [...args, metric];
  const W = Math.max(480, 140 * cols.length), H = 300, top = 30, bottom = 40, left = 60, right = 60;
  const xAt = (i) => left + (cols.length === 1 ? 0 : (i * (W - left - right)) / (cols.length - 1));
  const yAt = (p) => top + (1 - p) * (H - top - bottom);
  const axes = cols.map((c) => axisFor(children.map((ch) => (c === metric ? ch.metrics[c] : ch.args[c]))));
  const m = axes[axes.length - 1];
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "pcoords", role: "img", "aria-label": "parallel coordinates" });
  for (const ch of children) {
    const pts = cols.map((c, i) => {
      const p = axes[i].pos(c === metric ? ch.metrics[c] : ch.args[c]);
      return p === null ? null : `${xAt(i)},${yAt(p)}`;
    });
    if (pts.some((p) => p === null)) continue;
    svg.append(s("polyline", { points: pts.join(" "), fill: "none", stroke: colorFor(m.pos(ch.metrics[metric])), "stroke-width": 1.5, "stroke-opacity": 0.8, class: "pc-line" },
      s("title", {}, `${ch.id}: ${metric}=${fmtValue(ch.metrics[metric])}`)));
  }
  cols.forEach((c, i) => {
    svg.append(s("line", { x1: xAt(i), x2: xAt(i), y1: yAt(0), y2: yAt(1), stroke: "#888" }));
    svg.append(s("text", { x: xAt(i), y: H - 12, "text-anchor": "middle", class: "axis-label" }, c));
    for (const [p, label] of axes[i].ticks.slice(0, 12)) svg.append(s("text", { x: xAt(i) + 4, y: yAt(p) + 4, class: "tick" }, label));
  });
  return svg;
}

function scatter(children, arg, metric) {
  const W = 300, H = 220, pad = 40;
  const ax = axisFor(children.map((c) => c.args[arg]));
  const ay = axisFor(children.map((c) => c.metrics[metric]));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "scatter", role: "img", "aria-label": `${arg} vs ${metric}` });
  svg.append(s("rect", { x: pad, y: 10, width: W - pad - 10, height: H - pad - 10, fill: "none", stroke: "#ccc" }));
  for (const c of children) {
    const px = ax.pos(c.args[arg]), py = ay.pos(c.metrics[metric]);
    if (px === null || py === null) continue;
    const cx = pad + 8 + px * (W - pad - 26), cy = 18 + (1 - py) * (H - pad - 26);
    svg.append(s("circle", { cx, cy, r: 4, fill: colorFor(py), class: "pt" }, s("title", {}, `${c.id}: ${arg}=${fmtValue(c.args[arg])}, ${metric}=${fmtValue(c.metrics[metric])}`)));
  }
  svg.append(s("text", { x: (W + pad) / 2, y: H - 8, "text-anchor": "middle", class: "axis-label" }, arg));
  for (const [p, label] of ax.ticks.slice(0, 8)) svg.append(s("text", { x: pad + 8 + p * (W - pad - 26), y: H - pad + 14, "text-anchor": "middle", class: "tick" }, label));
  for (const [p, label] of ay.ticks) svg.append(s("text", { x: pad - 4, y: 22 + (1 - p) * (H - pad - 26), "text-anchor": "end", class: "tick" }, label));
  return h("figure", { class: "scatter-fig" }, svg, h("figcaption", {}, `${arg} vs ${metric}`));
}

function argsSideBySide(runs) {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.args)))].sort();
  const rows = names.map((n) => {
    const vals = runs.map((r) => fmtValue(r.args[n]));
    const differs = new Set(vals).size > 1;
    return h("tr", { class: differs ? "differs" : "" }, h("td", { class: "mono" }, n), vals.map((v) => h("td", {}, v)));
  });
  const mnames = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const mrows = mnames.map((n) => h("tr", {}, h("td", { class: "mono" }, n), runs.map((r) => h("td", { class: "num" }, fmtValue(r.metrics[n])))));
  const head = ["", ...runs.map((r) => r.id)];
  return [h("h3", {}, "Arguments"), table(head, rows, { id: "compare-args" }), h("h3", {}, "Latest metrics"), table(head, mrows)];
}

// One chart per metric, a line per run: every series in one request (about 4 points per pixel of the
// chart's width; the server downsamples longer ones), metric names taken from the answer, never sent.
async function overlayCharts(box, runs) {
  const points = Math.min(20000, 4 * Math.max(240, box.clientWidth));
  const ids = runs.map((r) => encodeURIComponent(r.id)).join(",");
  const data = runs.length ? (await api(`/api/compare/series?runs=${ids}&points=${points}`)).runs : {};
  const keys = [...new Set(runs.flatMap((r) => Object.keys(data[r.id] || {})))].sort();
  const charts = [];
  for (const key of keys) {
    const lines = runs.filter((r) => data[r.id] && data[r.id][key]).map((r) => ({ label: r.id, ...data[r.id][key] }));
    const div = h("div", { class: "chart", dataset: { key } });
    box.append(div);
    charts.push(new MetricChart(div, key, lines, { mode: "step" }));
  }
  if (!keys.length) box.append(h("p", { class: "muted" }, "no numeric metrics"));
  return charts;
}

async function renderCompare(main) {
  const q = query();
  if (q.get("sweep")) return renderSweep(main, q.get("sweep"));
  const ids = (q.get("runs") || "").split(",").filter(Boolean);
  if (ids.length < 2) {
    fill(main, h("h1", {}, "Compare"), h("p", {}, "Select two or more runs on the runs page, then ‘Compare selected’."));
    return;
  }
  const data = await api(`/api/compare?runs=${ids.map(encodeURIComponent).join(",")}`);
  const box = h("div", { class: "charts", id: "charts" });
  let charts = [];
  fill(main, h("h1", {}, `Compare ${data.runs.length} runs`),
    section("Runs", argsSideBySide(data.runs)),
    section("Curves", chartControls((m) => charts.forEach((c) => c.setMode(m)), (l) => charts.forEach((c) => c.setLog(l))), box));
  charts = await overlayCharts(box, data.runs.slice(0, 10));
}

async function renderSweep(main, id) {
  const d = await api(`/api/sweeps/${encodeURIComponent(id)}`);
  const metricSel = h("select", { id: "sweep-metric", "aria-label": "metric" }, d.metrics.map((m) => h("option", { value: m, selected: m === (d.primary_metric || d.metrics[0]) }, m)));
  const pc = h("div", { id: "pcoords" });
  const sc = h("div", { class: "scatters", id: "scatters" });
  const box = h("div", { class: "charts", id: "charts" });
  let charts = [];
  const draw = () => {
    const metric = metricSel.value;
    if (!metric) { pc.replaceChildren(h("p", { class: "muted" }, "the runs have no numeric metrics yet")); return; }
    pc.replaceChildren(parallelCoordinates(d.children, d.arguments, metric),
      d.arguments.length ? "" : h("p", { class: "muted" }, "the runs of this sweep record no arguments"));
    sc.replaceChildren(...d.arguments.map((a) => scatter(d.children, a, metric)));
  };
  metricSel.addEventListener("change", draw);
  const rows = d.children.map((c) => h("tr", {}, h("td", {}, runLink(c.id)), h("td", {}, statusBadge(c.status)),
    d.arguments.map((a) => h("td", {}, fmtValue(c.args[a]))), d.metrics.map((m) => h("td", { class: "num" }, fmtValue(c.metrics[m])))));
  fill(main, 
    h("h1", {}, "Sweep ", runLink(d.parent.id), ` · ${d.children.length} runs`),
    section("Parallel coordinates", h("label", {}, "metric ", metricSel), pc),
    section("Each argument against the metric", sc),
    section("Runs", table(["run", "status", ...d.arguments, ...d.metrics], rows, { id: "sweep-runs" })),
    section("Curves (first 10 runs)", chartControls((m) => charts.forEach((c) => c.setMode(m)), (l) => charts.forEach((c) => c.setLog(l))), box));
  draw();
  charts = await overlayCharts(box, d.children.slice(0, 10));
}
