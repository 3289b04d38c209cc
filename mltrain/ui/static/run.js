"use strict";
// One run: status timeline, arguments, config, environment, snapshot, git, the data it read and wrote,
// single values and charts (live), log (live), artifacts, registered models; a sweep's trials and
// parallel coordinates. While the run is live everything on the page follows its events, and is read
// again when it ends.

const LOG_CAP = 8 * 1024 * 1024;
const SWEEP_REFRESH_MS = 5000;

function timeline(history, run) {
  const end = run.ended_at || Date.now() / 1000;
  const start = history.length ? history[0].ts : run.created_at;
  const span = Math.max(end - start, 1e-3);
  const bar = h("div", { class: "timeline" }, history.map((x, i) => {
    const next = i + 1 < history.length ? history[i + 1].ts : end;
    const pct = Math.max(((next - x.ts) / span) * 100, 0.5);
    return h("div", { class: `seg status-${x.status.toLowerCase()}`, style: `width:${pct}%`, title: `${x.status} ${fmtDuration(x.ts, next)}` });
  }));
  let prev = null;
  const rows = history.map((x) => {
    const tr = h("tr", {}, h("td", {}, statusBadge(x.status)), h("td", { class: "nowrap" }, fmtTime(x.ts)), h("td", {}, prev ? `+${(x.ts - prev).toFixed(2)}s` : ""), h("td", {}, x.detail || ""));
    prev = x.ts;
    return tr;
  });
  return [bar, table(["status", "at", "after", "detail"], rows, { id: "timeline" })];
}

function argsTable(args) {
  const entries = Object.entries(args);
  if (!entries.length) return h("p", { class: "muted" }, "none");
  return table(["argument", "value"], entries.map(([k, v]) => h("tr", {}, h("td", { class: "mono" }, k), h("td", {}, fmtFull(v)))), { id: "arguments" });
}

function loggedTables(tables) {
  return Object.entries(tables).map(([key, t]) => {
    if (t.kind === "list") return h("div", {}, h("h3", {}, key), h("p", { class: "mono" }, t.values.map(fmtValue).join(", ")));
    const cols = Object.keys(t.columns);
    const n = Math.max(0, ...cols.map((c) => t.columns[c].length));
    const rows = [];
    for (let i = 0; i < n; i++) rows.push(h("tr", {}, cols.map((c) => h("td", {}, fmtValue(t.columns[c][i])))));
    return h("div", {}, h("h3", {}, key), table(cols, rows));
  });
}

function latestTable(scalars) {
  const entries = Object.entries(scalars);
  if (!entries.length) return h("p", { class: "muted" }, "none yet");
  return table(["metric", "latest"], entries.map(([k, v]) => h("tr", {}, h("td", { class: "mono" }, k),
    h("td", { class: "num", dataset: { latest: k }, title: fmtFull(v) }, fmtFull(v)))), { id: "latest" });
}

async function renderRun(main, runId) {
  // the run and all its numeric series are fetched at once (times only when x is time); the charts
  // draw as soon as their series arrive. The series' last_id is where live events start.
  const enc = encodeURIComponent(runId);
  const pre = window.mltrainPrefetch;
  const seriesP = pre && decodeURIComponent(pre.id) === runId ? pre.series.then(parseResponse) : api(`/api/runs/${enc}/series?fields=step,value`);
  const detailP = api(`/api/runs/${enc}`);
  detailP.catch(() => {});  // handled where awaited
  let all;
  try {
    all = await seriesP;
  } catch (err) {
    if (err.status === 404) return notFound(main, err);
    throw err;
  }
  const head = h("div", {}, h("h1", {}, "Run ", h("span", { class: "mono id" }, runId)));
  const details = h("div");
  const sweepBox = h("div");
  const metricsBox = h("div");
  const tilesBox = h("div", { class: "tiles", id: "tiles" });
  const chartsBox = h("div", { class: "charts", id: "charts" });
  const tablesBox = h("div");
  const bottom = h("div");
  const logBox = h("pre", { class: "log", id: "log" });
  const charts = new Map();
  const lines = new Map();  // metric -> {label, step, ts, value}: a chart's line, or a single value's point
  const chartOpts = { mode: "step", log: false, smoothing: 0 };
  fill(main, head, details, sweepBox, metricsBox,
    section("Charts", chartControls((c) => {
      if ("mode" in c) setMode(c.mode).catch(showError);
      else { Object.assign(chartOpts, c); applyControl(charts.values(), c); }
    }),
      tilesBox, chartsBox),
    tablesBox,
    section("Output", h("label", { class: "muted" }, h("input", { type: "checkbox", id: "follow", checked: true }), " follow"), logBox),
    bottom);

  // a metric logged once is a number; from its second point on, a chart
  const placeSeries = (key) => {
    const line = lines.get(key);
    if (charts.has(key)) return;
    const old = tilesBox.querySelector(`.tile[data-key="${CSS.escape(key)}"]`);
    if (line.value.length <= 1) {
      const tile = valueTile(key, line.value[0]);
      if (old) old.replaceWith(tile); else tilesBox.append(tile);
      return;
    }
    if (old) old.remove();
    const box = h("div", { class: "chart", dataset: { key } });
    const keys = [...charts.keys(), key].sort();
    const before = keys[keys.indexOf(key) + 1];
    if (before) chartsBox.insertBefore(box, charts.get(before).container); else chartsBox.append(box);
    charts.set(key, new MetricChart(box, key, [line], chartOpts));
  };
  for (const key of Object.keys(all.series).sort()) {
    lines.set(key, { label: key, ...all.series[key] });
    placeSeries(key);
  }
  let lastId = all.last_id;
  const seen = new Map([...lines.keys()].map((k) => [k, all.last_id]));
  if (!all.count) chartsBox.append(h("p", { class: "muted", id: "no-charts" }, "no numeric metrics yet"));

  let d = await detailP;
  const r0 = d.run;
  document.title = `${r0.id} · mltrain`;
  const writable = await canWrite();
  const latest = { ...d.scalars };
  let durationTimer = null;

  const renderDetails = () => {
    const r = d.run;
    const actions = h("div", { class: "actions" });
    if (!d.terminal && writable) {
      actions.append(h("button", { id: "cancel-run", onclick: async () => {
        try {
          await apiWrite(`/api/runs/${encodeURIComponent(r.id)}/cancel`);
          flash(`cancel of run ${r.id} requested`, "ok");
        } catch (err) { showError(err); }
      } }, "Cancel run"));
    }
    if (d.has_children) actions.append(h("a", { class: "button", href: `/compare?sweep=${encodeURIComponent(r.id)}` }, "Compare the sweep's runs"));
    const git = r.git_commit ? `${short(r.git_commit)}${r.git_dirty ? " (dirty)" : ""}` : null;
    const snap = d.snapshot;
    fill(head, h("h1", {}, "Run ", h("span", { class: "mono id" }, r.id), " ", h("span", { id: "run-status" }, statusBadge(r.status))), actions);
    fill(details, h("div", { class: "grid" },
      section("Overview", kv([
        ["experiment", r.experiment],
        ["created", fmtTime(r.created_at)],
        ["duration", h("span", { id: "run-duration" }, fmtDuration(r.started_at || r.created_at, r.ended_at))],
        ["compute", r.compute],
        ["ran on", r.job_ref && r.job_ref.node ? r.job_ref.node : undefined],
        ["command", [r.script || "", ...(r.arguments || [])].join(" ")],
        ["overrides", (r.overrides || []).join(" ")],
        ["parent run", r.parent_run_id ? runLink(r.parent_run_id) : null],
        ["exit code", h("span", { id: "exit-code" }, r.exit_code === null || r.exit_code === undefined ? "-" : String(r.exit_code))],
        ["error", r.error ? h("pre", { class: "error-text", id: "run-error" }, r.error) : null],
        ["problems", (r.problems || []).length ? r.problems.map((p) => h("div", { class: "problem" }, p)) : undefined],
        ["tags", tagChips(d.tags, true)],
      ])),
      section("Environment, snapshot, git", kv([
        ["environment", r.env_name ? h("a", { href: `/environments#${r.env_hash || ""}` }, `${r.env_name} (${short(r.env_hash)})`) : null],
        ["snapshot", snap ? `${short(snap.id)} · ${snap.file_count ?? "?"} files · ${fmtBytes(snap.total_bytes)}` : null],
        ["source", r.source_dir],
        ["git commit", git],
      ]), snap && snap.files ? h("details", {}, h("summary", {}, "snapshot files"), table(["path", "size"], snap.files.map((f) => h("tr", {}, h("td", { class: "mono" }, f.path), h("td", { class: "num" }, fmtBytes(f.size)))))) : null),
      section("Status timeline", timeline(d.history, r)),
      d.has_children ? null : section("Arguments", argsTable(d.args)),
      d.inputs.length || d.outputs.length ? section("Data", runDataTable(d.inputs, d.outputs)) : null));
    fill(metricsBox, section("Latest metrics", latestTable(latest)));
    fill(tablesBox, Object.keys(d.tables).length ? section("Tables", loggedTables(d.tables)) : null);
    fill(bottom,
      section("Artifacts", artifactView(r.id, d.artifacts, d.terminal)),
      section("Registered models", d.models.length
        ? table(["model", "version", "format", "framework"], d.models.map((m) => h("tr", {}, h("td", {}, modelLink(m.name)), h("td", {}, modelLink(m.name, m.version)), h("td", {}, m.format), h("td", {}, `${m.framework || "-"} ${m.framework_version || ""}`))))
        : h("p", { class: "muted" }, "none")),
      section("Resolved config", h("details", {}, h("summary", {}, "config"), h("pre", { class: "config" }, JSON.stringify(r.config, null, 2)))));
    clearInterval(durationTimer);
    if (!d.terminal) {
      durationTimer = setInterval(() => {
        const el = $("#run-duration");
        if (el) el.textContent = fmtDuration(d.run.started_at || d.run.created_at, null);
      }, 1000);
    }
  };
  renderDetails();

  const drawSweep = async () => {
    const sw = await api(`/api/sweeps/${enc}`);
    const views = sweepViews(sw);
    fill(sweepBox,
      section(sw.primary_metric ? `Trials, best ${sw.primary_metric} first` : "Trials", views.trials),
      section("Parallel coordinates", h("label", {}, "metric ", views.metricSel), views.pc));
  };
  if (d.has_children) await drawSweep();

  // x = time needs the points' times: fetched once, then kept up to date by the live events
  let buffering = null;
  let haveTimes = false;
  const setMode = async (next) => {
    if (needsTimes(next) && !haveTimes) {
      buffering = [];
      try {
        const full = await api(`/api/runs/${enc}/series`);
        for (const [key, sr] of Object.entries(full.series)) {
          const line = lines.get(key);
          if (line) Object.assign(line, sr); else lines.set(key, { label: key, ...sr });
          seen.set(key, full.last_id);
          placeSeries(key);
        }
        haveTimes = true;
      } finally {
        const queued = buffering;
        buffering = null;
        queued.forEach(applyMetrics);
      }
    }
    chartOpts.mode = next;
    charts.forEach((c) => c.setMode(next));
  };

  // the log so far
  let offset = 0;
  const appendLog = (text) => {
    logBox.append(text);
    if ($("#follow").checked) logBox.scrollTop = logBox.scrollHeight;
  };
  for (;;) {
    const part = await api(`/api/runs/${enc}/log?offset=${offset}`);
    appendLog(part.text);
    offset = part.next_offset;
    if (part.next_offset - part.offset < 256 * 1024 || offset > LOG_CAP) break;
  }
  if (d.terminal) return;

  // live: one event stream for the charts, the log and the status; the rest of the page is read
  // again when the status changes and when the run ends
  let refreshing = null, again = false;
  const refresh = async () => {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      do {
        again = false;
        d = await api(`/api/runs/${enc}`);
        Object.assign(latest, d.scalars);
        renderDetails();
        if (d.has_children) await drawSweep();
      } while (again);
    })().finally(() => { refreshing = null; });
    return refreshing;
  };
  const sweepTimer = d.has_children ? setInterval(() => drawSweep().catch(showError), SWEEP_REFRESH_MS) : null;
  const es = new EventSource(`/api/runs/${enc}/events?after=${lastId}&offset=${offset}`);
  es.addEventListener("metrics", (ev) => {
    const m = JSON.parse(ev.data);
    if (buffering) buffering.push(m);
    else applyMetrics(m);
  });
  function applyMetrics(m) {
    for (const [key, sr] of Object.entries(m.series)) {
      const after = seen.get(key) || 0;
      let i = 0;
      while (i < sr.id.length && sr.id[i] <= after) i++;
      if (i >= sr.id.length) continue;
      const pts = { step: sr.step.slice(i), ts: sr.ts.slice(i), value: sr.value.slice(i) };
      seen.set(key, sr.id[sr.id.length - 1]);
      lastId = Math.max(lastId, sr.id[sr.id.length - 1]);
      latest[key] = pts.value[pts.value.length - 1];
      const cell = metricsBox.querySelector(`td[data-latest="${CSS.escape(key)}"]`);
      if (cell) { cell.textContent = fmtFull(latest[key]); cell.title = fmtFull(latest[key]); } else fill(metricsBox, section("Latest metrics", latestTable(latest)));
      if (charts.has(key)) { charts.get(key).append(0, pts); continue; }
      const line = lines.get(key) || { label: key, step: [], ts: haveTimes ? [] : undefined, value: [] };
      line.step.push(...pts.step);
      if (line.ts) line.ts.push(...pts.ts);
      line.value.push(...pts.value);
      lines.set(key, line);
      const none = $("#no-charts");
      if (none) none.remove();
      placeSeries(key);
    }
  }
  es.addEventListener("log", (ev) => {
    const l = JSON.parse(ev.data);
    if (l.offset === offset) { appendLog(l.text); offset = l.next_offset; }
  });
  es.addEventListener("status", (ev) => {
    const x = JSON.parse(ev.data);
    $("#run-status").replaceChildren(statusBadge(x.status));
    if (x.status !== d.run.status) refresh().catch(showError);
  });
  es.addEventListener("end", () => {
    es.close();
    clearInterval(sweepTimer);
    refresh().then(() => clearInterval(durationTimer)).catch(showError);
  });
  window.addEventListener("beforeunload", () => es.close());
}
