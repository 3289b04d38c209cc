"use strict";
// Plain-SVG plots of runs side by side: parallel coordinates (full width, brushing, hover highlight),
// scatter of one column against another, bars of single values. Text only through text nodes.

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

// About ``count`` round values from lo to hi (1, 2 or 5 times a power of ten apart).
function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((x) => x >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

// An axis for the values of one column: numeric (linear, or log when positive over two decades or
// more) or categorical (evenly spaced). pos(v) is 0..1 or null; ticks are [pos, label].
function axisFor(values) {
  const present = values.filter((v) => v !== undefined && v !== null);
  if (present.length && present.every(isNum)) {
    const lo = Math.min(...present), hi = Math.max(...present);
    if (lo > 0 && hi / lo >= 100) {
      const l = Math.log10(lo), r = Math.log10(hi);
      const pos = (v) => (isNum(v) && v > 0 ? (Math.log10(v) - l) / (r - l) : null);
      const decades = [];
      for (let e = Math.ceil(l - 1e-9); e <= r + 1e-9; e++) decades.push(Math.pow(10, e));
      const mids = decades.length < 4 ? decades.flatMap((d) => [2 * d, 5 * d]).concat([2, 5].map((m) => (m * decades[0]) / 10)) : [];
      const ticks = [...decades, ...mids].filter((v) => v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)).sort((a, b) => a - b);
      return { numeric: true, log: true, pos, ticks: ticks.map((v) => [pos(v), fmtValue(v)]) };
    }
    const pos = (v) => (isNum(v) ? (hi === lo ? 0.5 : (v - lo) / (hi - lo)) : null);
    return { numeric: true, log: false, pos, ticks: niceTicks(lo, hi).map((v) => [pos(v), fmtValue(v)]) };
  }
  const cats = [...new Set(present.map((v) => String(v)))].sort();
  const at = (i) => (cats.length === 1 ? 0.5 : i / (cats.length - 1));
  return { numeric: false, log: false, pos: (v) => (v === undefined || v === null ? null : at(cats.indexOf(String(v)))), ticks: cats.map((c, i) => [at(i), c]) };
}

// blue (low) -> orange (high)
function gradient(t) {
  const a = [43, 108, 176], b = [221, 107, 32];
  const c = a.map((x, i) => Math.round(x + (b[i] - x) * (isNum(t) ? t : 0.5)));
  return `rgb(${c.join(",")})`;
}

// Parallel coordinates of ``rows`` ([{id, values: {column: value}, color?}]) over ``columns`` (names),
// as wide as its box; a row without a column's value crosses that axis at "none", below it. Drag along an axis to keep only the rows inside (brushing; a click on the axis
// clears it); hovering a line highlights it. opts: colorBy (a column: lines coloured low to high),
// onBrush(ids kept or null), onHover(id or null), href(id).
function parallelCoordinates(rows, columns, opts = {}) {
  const box = h("div", { class: "pcoords-box" });
  const status = h("p", { class: "muted small pc-status" });
  const wrap = h("div", { class: "pc-wrap" }, box, status);
  const NONE = -0.1;
  const axes = columns.map((c) => {
    const axis = axisFor(rows.map((r) => r.values[c]));
    if (rows.some((r) => r.values[c] === undefined || r.values[c] === null)) {
      const pos = axis.pos;
      return { ...axis, missing: true, pos: (v) => (v === undefined || v === null ? NONE : pos(v)) };
    }
    return axis;
  });
  const brushes = new Map();  // column index -> [lo, hi] in axis position (0..1)
  const colorAxis = opts.colorBy ? axisFor(rows.map((r) => r.values[opts.colorBy])) : null;
  let lastWidth = 0;

  const kept = (r) => [...brushes].every(([i, [lo, hi]]) => {
    const p = axes[i].pos(r.values[columns[i]]);
    return p !== null && p >= lo && p <= hi;
  });

  function report() {
    const ids = brushes.size ? rows.filter(kept).map((r) => r.id) : null;
    status.textContent = ids ? `${ids.length} of ${rows.length} runs inside the brushed ranges (click an axis to clear its range)` : "drag along an axis to keep the runs inside a range";
    box.querySelectorAll("polyline.pc-line").forEach((el) => el.classList.toggle("dim", !!ids && !ids.includes(el.dataset.run)));
    box.querySelectorAll("rect.pc-brush").forEach((el) => {
      const b = brushes.get(Number(el.dataset.axis));
      el.setAttribute("visibility", b ? "visible" : "hidden");
    });
    if (opts.onBrush) opts.onBrush(ids);
  }

  function draw() {
    const width = Math.max(box.clientWidth || 0, 110 * columns.length, 320);
    lastWidth = box.clientWidth;
    const H = 340, top = 24, bottom = 66, left = 50, right = 70;
    const xAt = (i) => left + (columns.length === 1 ? (width - left - right) / 2 : (i * (width - left - right)) / (columns.length - 1));
    const yAt = (p) => top + (1 - p) * (H - top - bottom);
    const svg = s("svg", { width, height: H, class: "pcoords", role: "img", "aria-label": `parallel coordinates of ${columns.join(", ")}` });
    const lines = s("g", { class: "pc-lines" });
    for (const r of rows) {
      const pts = columns.map((c, i) => {
        const p = axes[i].pos(r.values[c]);
        return p === null ? null : `${xAt(i)},${yAt(p)}`;
      });
      if (pts.some((p) => p === null)) continue;
      const color = r.color || (colorAxis ? gradient(colorAxis.pos(r.values[opts.colorBy])) : colorOf(0));
      const line = s("polyline", { points: pts.join(" "), fill: "none", stroke: color, "stroke-width": 2, class: "pc-line", "data-run": r.id },
        s("title", {}, `${r.id}\n${columns.map((c) => `${c} = ${fmtFull(r.values[c])}`).join("\n")}`));
      line.addEventListener("mouseenter", () => { svg.classList.add("hovering"); line.classList.add("hot"); if (opts.onHover) opts.onHover(r.id); });
      line.addEventListener("mouseleave", () => { svg.classList.remove("hovering"); line.classList.remove("hot"); if (opts.onHover) opts.onHover(null); });
      if (opts.href) line.addEventListener("click", () => { location.href = opts.href(r.id); });
      lines.append(line);
    }
    svg.append(lines);
    columns.forEach((c, i) => {
      const x = xAt(i);
      const g = s("g", { class: "pc-axis", "data-axis": i });
      g.append(s("line", { x1: x, x2: x, y1: yAt(0), y2: yAt(1), stroke: "#718096" }));
      for (const [p, label] of axes[i].ticks.slice(0, 12)) {
        g.append(s("line", { x1: x - 3, x2: x + 3, y1: yAt(p), y2: yAt(p), stroke: "#718096" }));
        g.append(s("text", { x: x + 5, y: yAt(p) + 3, class: "tick" }, label));
      }
      if (axes[i].missing) g.append(s("text", { x: x + 5, y: yAt(NONE) + 3, class: "tick" }, "none"));
      g.append(s("text", { x, y: H - 24, "text-anchor": "middle", class: "axis-label" }, c));
      if (axes[i].log) g.append(s("text", { x, y: H - 10, "text-anchor": "middle", class: "tick" }, "log scale"));
      const b = brushes.get(i);
      g.append(s("rect", { x: x - 7, width: 14, y: b ? yAt(b[1]) : 0, height: b ? yAt(b[0]) - yAt(b[1]) : 0, class: "pc-brush", "data-axis": i, visibility: b ? "visible" : "hidden" }));
      const hit = s("rect", { x: x - 12, width: 24, y: yAt(1) - 4, height: yAt(0) - yAt(1) + 8, class: "pc-hit", "data-axis": i, fill: "transparent" },
        s("title", {}, `${c}: drag to keep a range, click to clear`));
      hit.addEventListener("pointerdown", (e) => {
        e.preventDefault();
        hit.setPointerCapture(e.pointerId);
        const bounds = svg.getBoundingClientRect();
        const toPos = (ev) => Math.min(1, Math.max(0, 1 - (ev.clientY - bounds.top - top) / (H - top - bottom)));
        const start = toPos(e);
        const rect = g.querySelector("rect.pc-brush");
        let moved = false;
        const move = (ev) => {
          const p = toPos(ev);
          if (Math.abs(p - start) < 0.01 && !moved) return;
          moved = true;
          const lo = Math.min(start, p), hi = Math.max(start, p);
          brushes.set(i, [lo, hi]);
          rect.setAttribute("y", yAt(hi));
          rect.setAttribute("height", yAt(lo) - yAt(hi));
          report();
        };
        const up = () => {
          hit.removeEventListener("pointermove", move);
          hit.removeEventListener("pointerup", up);
          if (!moved) brushes.delete(i);
          report();
        };
        hit.addEventListener("pointermove", move);
        hit.addEventListener("pointerup", up);
      });
      g.append(hit);
      svg.append(g);
    });
    box.replaceChildren(svg);
    report();
  }

  new ResizeObserver(() => { if (box.clientWidth !== lastWidth) draw(); }).observe(box);
  requestAnimationFrame(draw);
  draw();
  return wrap;
}

// One column against another: a point per row (coloured as the row, or low-to-high by ``y``).
function scatter(rows, xCol, yCol) {
  const W = 300, H = 220, pad = 44;
  const ax = axisFor(rows.map((r) => r.values[xCol]));
  const ay = axisFor(rows.map((r) => r.values[yCol]));
  const px = (p) => pad + 8 + p * (W - pad - 26);
  const py = (p) => 18 + (1 - p) * (H - pad - 26);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: "scatter", role: "img", "aria-label": `${xCol} vs ${yCol}` });
  svg.append(s("rect", { x: pad, y: 10, width: W - pad - 10, height: H - pad - 10, fill: "none", stroke: "#cbd5e0" }));
  for (const r of rows) {
    const x = ax.pos(r.values[xCol]), y = ay.pos(r.values[yCol]);
    if (x === null || y === null) continue;
    svg.append(s("circle", { cx: px(x), cy: py(y), r: 4, fill: r.color || gradient(y), class: "pt", "data-run": r.id },
      s("title", {}, `${r.id}: ${xCol} = ${fmtFull(r.values[xCol])}, ${yCol} = ${fmtFull(r.values[yCol])}`)));
  }
  svg.append(s("text", { x: (W + pad) / 2, y: H - 6, "text-anchor": "middle", class: "axis-label" }, ax.log ? `${xCol} (log)` : xCol));
  for (const [p, label] of ax.ticks.slice(0, 8)) svg.append(s("text", { x: px(p), y: H - pad + 14, "text-anchor": "middle", class: "tick" }, label));
  for (const [p, label] of ay.ticks.slice(0, 8)) svg.append(s("text", { x: pad - 4, y: py(p) + 4, "text-anchor": "end", class: "tick" }, label));
  return h("figure", { class: "scatter-fig" }, svg, h("figcaption", {}, `${xCol} vs ${yCol}`));
}

// Single values side by side: a bar per run (``bars``: [{label, value, color}]), the value in full.
function barChart(title, bars) {
  const W = 420, row = 22, left = 150, top = 6;
  const values = bars.map((b) => b.value).filter(isNum);
  const lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const xAt = (v) => left + ((v - lo) / span) * (W - left - 90);
  const svg = s("svg", { viewBox: `0 0 ${W} ${top * 2 + row * bars.length}`, width: "100%", class: "bars", role: "img", "aria-label": title });
  bars.forEach((b, i) => {
    const y = top + i * row;
    svg.append(s("text", { x: left - 6, y: y + 15, "text-anchor": "end", class: "tick" }, b.label.length > 24 ? `${b.label.slice(0, 23)}…` : b.label));
    if (isNum(b.value)) {
      const x0 = xAt(Math.min(0, b.value)), x1 = xAt(Math.max(0, b.value));
      svg.append(s("rect", { x: x0, y: y + 3, width: Math.max(1, x1 - x0), height: row - 6, fill: b.color, class: "bar", "data-value": b.value },
        s("title", {}, `${b.label}: ${fmtFull(b.value)}`)));
    }
    svg.append(s("text", { x: xAt(Math.max(0, isNum(b.value) ? b.value : 0)) + 4, y: y + 15, class: "tick" }, fmtFull(b.value)));
  });
  return h("figure", { class: "bar-fig", dataset: { key: title } }, h("figcaption", {}, title), svg);
}
