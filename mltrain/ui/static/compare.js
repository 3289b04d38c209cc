"use strict";
// Compare: chosen runs side by side, each in its own colour in every view (arguments and metrics,
// single values as bars, curves, parallel coordinates, scatter); a sweep's trials best first with its
// parallel coordinates and scatters.

const numeric = (v) => typeof v === "number" && Number.isFinite(v);

// Rows of the plots: a run's arguments and latest metrics by name (arguments first: no name twice).
const plotRows = (runs, colors) => runs.map((r, i) => ({ id: r.id, values: { ...r.metrics, ...r.args }, color: colors ? colors[i] : null }));

function runHead(r, color) {
  return h("span", { class: "run-key" }, h("span", { class: "swatch", style: `background:${color}` }), runLink(r.id));
}

function argsSideBySide(runs, colors) {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.args)))].sort();
  const rows = names.map((n) => {
    const vals = runs.map((r) => fmtValue(r.args[n]));
    const differs = new Set(vals).size > 1;
    return h("tr", { class: differs ? "differs" : "" }, h("td", { class: "mono" }, n), vals.map((v) => h("td", {}, v)));
  });
  const mnames = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].filter((n) => !names.includes(n)).sort();
  const mrows = mnames.map((n) => h("tr", {}, h("td", { class: "mono" }, n), runs.map((r) => h("td", { class: "num", title: fmtFull(r.metrics[n]) }, fmtValue(r.metrics[n])))));
  const head = () => ["", ...runs.map((r, i) => runHead(r, colors[i]))];
  return [h("h3", {}, "Arguments"), table(head(), rows, { id: "compare-args" }), h("h3", {}, "Latest metrics"), table(head(), mrows, { id: "compare-metrics" })];
}

// One chart per metric logged more than once, a line per run in the run's colour: every series in one
// request (about 4 points per pixel of width; the server downsamples longer ones), metric names taken
// from the answer, never sent. A metric every run logged once is a bar per run in ``singles``.
async function overlayCharts(box, singles, runs, colors) {
  const points = Math.min(20000, 4 * Math.max(240, box.clientWidth));
  const ids = runs.map((r) => encodeURIComponent(r.id)).join(",");
  const data = runs.length ? (await api(`/api/compare/series?runs=${ids}&points=${points}`)).runs : {};
  const keys = [...new Set(runs.flatMap((r) => Object.keys(data[r.id] || {})))].sort();
  const charts = [];
  for (const key of keys) {
    const have = runs.map((r, i) => [r, i]).filter(([r]) => data[r.id] && data[r.id][key]);
    if (have.every(([r]) => data[r.id][key].value.length <= 1)) {
      singles.append(barChart(key, have.map(([r, i]) => ({ label: r.id, value: data[r.id][key].value[0], color: colors[i] }))));
      continue;
    }
    const lines = have.map(([r, i]) => ({ label: r.id, color: colors[i], ...data[r.id][key] }));
    const div = h("div", { class: "chart", dataset: { key } });
    box.append(div);
    charts.push(new MetricChart(div, key, lines, { mode: "step" }));
  }
  if (!charts.length) box.append(h("p", { class: "muted" }, "no metric logged more than once"));
  if (!singles.children.length && singles.closest("section")) singles.closest("section").hidden = true;
  return charts;
}

// Parallel coordinates and scatters of ``rows`` over ``columns`` against a chosen metric.
function explorer(rows, columns, metrics, chosen, opts = {}) {
  const metricSel = h("select", { id: "plot-metric", "aria-label": "metric" }, metrics.map((m) => h("option", { value: m, selected: m === chosen }, m)));
  const pc = h("div", { id: "pcoords" });
  const sc = h("div", { class: "scatters", id: "scatters" });
  const draw = () => {
    const metric = metricSel.value;
    if (!metric) { pc.replaceChildren(h("p", { class: "muted" }, "the runs have no numeric metrics yet")); sc.replaceChildren(); return; }
    const cols = [...columns.filter((c) => c !== metric), metric];
    pc.replaceChildren(parallelCoordinates(rows, cols, { colorBy: opts.colored ? null : metric, onBrush: opts.onBrush, onHover: opts.onHover,
      href: (id) => `/runs/${encodeURIComponent(id)}` }));
    sc.replaceChildren(...columns.filter((c) => c !== metric).map((c) => scatter(rows, c, metric)));
    if (!columns.length) sc.replaceChildren(h("p", { class: "muted" }, "no arguments to plot against"));
  };
  metricSel.addEventListener("change", draw);
  draw();
  return { metricSel, pc, sc };
}

// A sweep's trials, best first: trial number, run, status, the primary metric, the arguments it
// varied and the other metrics; the best one marked.
function trialsTable(d) {
  const others = d.metrics.filter((m) => m !== d.primary_metric);
  const rows = d.children.map((c) => h("tr", { class: c.id === d.best ? "best" : "", dataset: { run: c.id } },
    h("td", {}, c.trial === null ? "-" : `#${c.trial}`),
    h("td", { class: "nowrap" }, runLink(c.id), c.id === d.best ? h("span", { class: "badge", title: `best ${d.primary_metric} (${d.goal})` }, "★ best") : null),
    h("td", {}, statusBadge(c.status)),
    d.primary_metric ? h("td", { class: "num", title: fmtFull(c.value) }, fmtValue(c.value)) : null,
    d.arguments.map((a) => h("td", {}, fmtValue(c.args[a]))),
    others.map((m) => h("td", { class: "num", title: fmtFull(c.metrics[m]) }, fmtValue(c.metrics[m])))));
  const primary = d.primary_metric ? [`${d.primary_metric} (${d.goal === "minimize" ? "lowest" : "highest"} first)`] : [];
  return table(["trial", "run", "status", ...primary, ...d.arguments, ...others], rows, { id: "sweep-runs" });
}

// The trials table and the parallel coordinates of a sweep, linked: brushing filters the table,
// hovering a line marks its row.
function sweepViews(d) {
  const trials = trialsTable(d);
  const chosen = d.primary_metric && d.metrics.includes(d.primary_metric) ? d.primary_metric : d.metrics[0];
  const views = explorer(plotRows(d.children), d.arguments, d.metrics, chosen, {
    onBrush: (ids) => trials.querySelectorAll("tbody tr").forEach((tr) => { tr.hidden = !!ids && !ids.includes(tr.dataset.run); }),
    onHover: (id) => trials.querySelectorAll("tbody tr").forEach((tr) => tr.classList.toggle("highlight", tr.dataset.run === id)),
  });
  return { trials, ...views };
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
  const runs = data.runs;
  const colors = runs.map((_, i) => colorOf(i));
  const argNames = [...new Set(runs.flatMap((r) => Object.keys(r.args)))].sort();
  const varied = argNames.filter((n) => new Set(runs.map((r) => fmtFull(r.args[n]))).size > 1);
  const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.metrics).filter((k) => numeric(r.metrics[k]))))].filter((m) => !argNames.includes(m)).sort();
  const views = explorer(plotRows(runs, colors), varied.length ? varied : argNames, metrics, metrics[0], { colored: true });
  const box = h("div", { class: "charts", id: "charts" });
  const singles = h("div", { class: "bars-box", id: "singles" });
  let charts = [];
  fill(main, h("h1", {}, `Compare ${runs.length} runs`),
    section("Runs", argsSideBySide(runs, colors)),
    section("Single values", singles),
    section("Curves", chartControls((c) => applyControl(charts, c)), box),
    section("Parallel coordinates", h("label", {}, "metric ", views.metricSel), views.pc),
    section("Each varied argument against the metric", views.sc));
  charts = await overlayCharts(box, singles, runs.slice(0, COLORS.length), colors);
}

async function renderSweep(main, id) {
  const d = await api(`/api/sweeps/${encodeURIComponent(id)}`);
  const views = sweepViews(d);
  const box = h("div", { class: "charts", id: "charts" });
  const singles = h("div", { class: "bars-box", id: "singles" });
  const shown = d.children.slice(0, COLORS.length);
  const which = d.primary_metric ? `the ${shown.length} best trials` : `the first ${shown.length} trials`;
  let charts = [];
  fill(main,
    h("h1", {}, "Sweep ", runLink(d.parent.id), ` · ${d.children.length} runs`),
    section("Parallel coordinates", h("label", {}, "metric ", views.metricSel), views.pc),
    section("Each argument against the metric", views.sc),
    section(d.primary_metric ? `Trials, best ${d.primary_metric} first` : "Trials", views.trials),
    section(`Single values (${which})`, singles),
    section(`Curves (${which})`, chartControls((c) => applyControl(charts, c)), box));
  charts = await overlayCharts(box, singles, shown, shown.map((_, i) => colorOf(i)));
}
