"use strict";
// Metric charts on uPlot: one or more lines, x = step, relative time or wall time, smoothing, drag to
// zoom (double-click resets), hover values in full in the legend, log scale, live appends that keep
// the user's zoom. A metric with a single value is a number (valueTile), never a one-point chart.

const STEP_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8, 1e9];
const X_MODES = [["step", "x: step"], ["relative", "x: relative time"], ["wall", "x: wall time"]];
const needsTimes = (mode) => mode !== "step";
window.mltrainDrawn = window.mltrainDrawn || {};

// x values of a line: its steps (the index where a point has none), seconds since its first point, or times.
function xValues(s, mode) {
  if (mode === "wall") return s.ts.slice();
  if (mode === "relative") {
    const t0 = s.ts.length ? s.ts[0] : 0;
    return s.ts.map((t) => t - t0);
  }
  const out = new Array(s.value.length);
  for (let i = 0; i < out.length; i++) out[i] = s.step[i] === null || s.step[i] === undefined ? i : s.step[i];
  return out;
}

// [x, y] sorted by x (uPlot needs ascending x); already-sorted input (the usual case) is not copied.
function sortedXY(x, y) {
  let sorted = true;
  for (let i = 1; i < x.length; i++) if (x[i] < x[i - 1]) { sorted = false; break; }
  if (sorted) return [x, y];
  const idx = x.map((_, i) => i).sort((a, b) => x[a] - x[b] || a - b);
  return [idx.map((i) => x[i]), idx.map((i) => y[i])];
}

function logSafe(y, log) {
  return log ? y.map((v) => (v > 0 ? v : null)) : y;
}

// An exponential moving average with TensorBoard's debiasing (weight 0: the values themselves).
function smooth(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) { out[i] = v; continue; }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

function xLabel(mode) {
  return mode === "step" ? "step" : mode === "relative" ? "seconds since the first point" : "time";
}

function xFormat(mode) {
  if (mode === "wall") return (u, v) => (v === null || v === undefined ? "-" : `${fmtTime(v)}.${String(Math.round((v % 1) * 1000)).padStart(3, "0")}`);
  if (mode === "relative") return (u, v) => (v === null || v === undefined ? "-" : `${+v.toFixed(3)} s`);
  return (u, v) => fmtFull(v);
}

class MetricChart {
  // lines: [{label, step[], ts[], value[], color?}]
  constructor(container, title, lines, opts) {
    this.container = container;
    this.title = title;
    this.lines = lines;
    this.mode = opts.mode || "step";
    this.log = !!opts.log;
    this.smoothing = opts.smoothing || 0;
    this.zoomed = false;
    this.u = null;
    this.render();
    new ResizeObserver(() => this.u && this.u.setSize(this.size())).observe(container);
  }

  size() {
    return { width: Math.max(200, this.container.clientWidth - 8), height: 220 };
  }

  data() {
    const tables = [];
    for (const l of this.lines) {
      const [x, y] = sortedXY(xValues(l, this.mode), l.value);
      tables.push([x, logSafe(y, this.log)]);
      if (this.smoothing) tables.push([x, logSafe(smooth(y, this.smoothing), this.log)]);
    }
    if (tables.length === 1) return tables[0];
    return uPlot.join(tables);
  }

  points() {
    return this.lines.reduce((n, l) => n + l.value.length, 0);
  }

  render() {
    if (this.u) this.u.destroy();
    const multi = this.lines.length > 1 || this.smoothing > 0;
    const self = this;
    const full = (u, v) => fmtFull(v);
    const series = [{ label: xLabel(this.mode), value: xFormat(this.mode) }];
    this.lines.forEach((l, i) => {
      const color = l.color || colorOf(i);
      if (this.smoothing) {
        series.push({ label: `${l.label} (raw)`, stroke: `${color}55`, width: 1, spanGaps: multi, value: full });
        series.push({ label: `${l.label} (smoothed)`, stroke: color, width: 1.5, spanGaps: multi, value: full });
      } else {
        series.push({ label: l.label, stroke: color, width: 1.5, spanGaps: multi, value: full });
      }
    });
    const opts = {
      title: this.title,
      ...this.size(),
      scales: { x: { time: this.mode === "wall" }, y: this.log ? { distr: 3 } : {} },
      axes: [this.mode === "step" ? { label: "step", incrs: STEP_INCRS } : this.mode === "relative" ? { label: "seconds" } : {}, {}],
      series,
      cursor: { drag: { x: true, y: false } },
      hooks: {
        setSelect: [(u) => { if (u.select.width > 0) self.zoomed = true; }],
        draw: [() => {
          self.container.dataset.drawn = "1";
          self.container.dataset.points = String(self.points());
          if (!(self.title in window.mltrainDrawn)) window.mltrainDrawn[self.title] = performance.now();
        }],
      },
    };
    this.u = new uPlot(opts, this.data(), this.container);
    this.u.over.addEventListener("dblclick", () => { this.zoomed = false; });
  }

  setMode(mode) { this.mode = mode; this.zoomed = false; this.render(); }
  setLog(log) { this.log = log; this.render(); }
  setSmoothing(w) { this.smoothing = w; this.render(); }

  // new points of line ``i`` ({step[], ts[], value[]}).
  append(i, pts) {
    const l = this.lines[i];
    l.step.push(...pts.step);
    if (l.ts) l.ts.push(...pts.ts);
    l.value.push(...pts.value);
    this.u.setData(this.data(), !this.zoomed);
  }
}

// The controls of a group of charts: x axis, log scale, smoothing; ``on`` gets {mode}, {log} or {smoothing}.
function chartControls(on) {
  const mode = h("select", { "aria-label": "x axis", class: "x-mode", onchange: (e) => on({ mode: e.target.value }) },
    X_MODES.map(([v, label]) => h("option", { value: v }, label)));
  const log = h("input", { type: "checkbox", class: "log-scale", onchange: (e) => on({ log: e.target.checked }) });
  const shown = h("span", { class: "mono small" }, "0");
  const smoothing = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: 0, class: "smoothing", "aria-label": "smoothing",
    oninput: (e) => { shown.textContent = e.target.value; on({ smoothing: Number(e.target.value) }); } });
  return h("div", { class: "controls" }, mode, h("label", {}, log, " log scale"), h("label", {}, "smoothing ", smoothing, " ", shown),
    h("span", { class: "muted small" }, "drag to zoom, double-click to reset"));
}

// Apply a change of chartControls to charts.
function applyControl(charts, change) {
  for (const c of charts) {
    if ("mode" in change) c.setMode(change.mode);
    if ("log" in change) c.setLog(change.log);
    if ("smoothing" in change) c.setSmoothing(change.smoothing);
  }
}

// A metric with one value: the number, in full.
function valueTile(key, value, note) {
  return h("div", { class: "tile", dataset: { key } },
    h("div", { class: "tile-value mono", title: fmtFull(value) }, fmtFull(value)),
    h("div", { class: "tile-key" }, key),
    note ? h("div", { class: "muted small" }, note) : null);
}
