"use strict";
// Metric charts on uPlot: one or more series, x = step or time, drag to zoom (double-click resets),
// hover values in the legend, log scale, live appends that keep the user's zoom.

const PALETTE = ["#2b6cb0", "#dd6b20", "#38a169", "#e53e3e", "#805ad5", "#d69e2e", "#319795", "#b83280", "#4a5568", "#3182ce"];
const STEP_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8, 1e9];
window.mltrainDrawn = window.mltrainDrawn || {};

// x values of a series: its steps (the index where a point has none) or its times.
function xValues(s, mode) {
  if (mode === "time") return s.ts.slice();
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

class MetricChart {
  // lines: [{label, step[], ts[], value[]}]
  constructor(container, title, lines, opts) {
    this.container = container;
    this.title = title;
    this.lines = lines;
    this.mode = opts.mode || "step";
    this.log = !!opts.log;
    this.zoomed = false;
    this.u = null;
    this.render();
    new ResizeObserver(() => this.u && this.u.setSize(this.size())).observe(container);
  }

  size() {
    return { width: Math.max(240, this.container.clientWidth - 8), height: 220 };
  }

  data() {
    const tables = this.lines.map((l) => sortedXY(xValues(l, this.mode), logSafe(l.value, this.log)));
    if (tables.length === 1) return tables[0];
    return uPlot.join(tables);
  }

  points() {
    return this.lines.reduce((n, l) => n + l.value.length, 0);
  }

  render() {
    if (this.u) this.u.destroy();
    const multi = this.lines.length > 1;
    const self = this;
    const opts = {
      title: this.title,
      ...this.size(),
      scales: { x: { time: this.mode === "time" }, y: this.log ? { distr: 3 } : {} },
      axes: [this.mode === "time" ? {} : { label: "step", incrs: STEP_INCRS }, {}],
      series: [
        { label: this.mode === "time" ? "time" : "step" },
        ...this.lines.map((l, i) => ({ label: l.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: multi })),
      ],
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

  // new points of line ``i`` ({step[], ts[], value[]}).
  append(i, pts) {
    const l = this.lines[i];
    l.step.push(...pts.step);
    if (l.ts) l.ts.push(...pts.ts);
    l.value.push(...pts.value);
    this.u.setData(this.data(), !this.zoomed);
  }
}

function chartControls(onMode, onLog) {
  const mode = h("select", { "aria-label": "x axis", onchange: (e) => onMode(e.target.value) },
    h("option", { value: "step" }, "x: step"), h("option", { value: "time" }, "x: time"));
  const log = h("input", { type: "checkbox", onchange: (e) => onLog(e.target.checked) });
  return h("div", { class: "controls" }, mode, h("label", {}, log, " log scale"),
    h("span", { class: "muted" }, "drag to zoom, double-click to reset"));
}
