"use strict";
// One run: status timeline, arguments, config, environment, snapshot, git, charts (live), log (live),
// artifacts with previews, registered models.

const IMAGE_RE = /\.(png|jpe?g|gif|webp)$/i;
const TABLE_RE = /\.(csv|tsv)$/i;
const LOG_CAP = 8 * 1024 * 1024;

function timeline(history, run) {
  const end = run.ended_at || Date.now() / 1000;
  const start = history.length ? history[0].ts : run.created_at;
  const span = Math.max(end - start, 1e-3);
  const bar = h("div", { class: "timeline" }, history.map((s, i) => {
    const next = i + 1 < history.length ? history[i + 1].ts : end;
    const pct = Math.max(((next - s.ts) / span) * 100, 0.5);
    return h("div", { class: `seg status-${s.status.toLowerCase()}`, style: `width:${pct}%`, title: `${s.status} ${fmtDuration(s.ts, next)}` });
  }));
  let prev = null;
  const rows = history.map((s) => {
    const tr = h("tr", {}, h("td", {}, statusBadge(s.status)), h("td", {}, fmtTime(s.ts)), h("td", {}, prev ? `+${(s.ts - prev).toFixed(2)}s` : ""), h("td", {}, s.detail || ""));
    prev = s.ts;
    return tr;
  });
  return [bar, table(["status", "at", "after", "detail"], rows)];
}

function argsTable(args) {
  const entries = Object.entries(args);
  if (!entries.length) return h("p", { class: "muted" }, "none");
  return table(["argument", "value"], entries.map(([k, v]) => h("tr", {}, h("td", { class: "mono" }, k), h("td", {}, fmtValue(v)))));
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

function artifactList(runId, artifacts, terminal) {
  if (!artifacts.length) return h("p", { class: "muted" }, terminal ? "none" : "none yet (outputs/ and logs/ are stored when the run ends)");
  const base = `/api/runs/${encodeURIComponent(runId)}/artifacts/`;
  const url = (p) => base + p.split("/").map(encodeURIComponent).join("/");
  const previews = h("div", { class: "previews" });
  const rows = artifacts.map((a) => {
    const actions = [h("a", { href: `${url(a.path)}?download=1`, download: a.path.split("/").pop() }, "download")];
    if (TABLE_RE.test(a.path)) {
      actions.push(" ", h("button", { class: "link", onclick: async () => {
        try {
          const t = await api(`/api/runs/${encodeURIComponent(runId)}/preview?path=${encodeURIComponent(a.path)}`);
          previews.append(h("div", { class: "preview" }, h("h3", {}, a.path),
            table(t.columns, t.rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
            t.truncated ? h("p", { class: "muted" }, "first rows only") : null));
        } catch (err) { showError(err); }
      } }, "preview"));
    }
    return h("tr", {}, h("td", { class: "mono" }, a.path), h("td", { class: "num" }, fmtBytes(a.size)), h("td", { class: "mono" }, short(a.sha256)), h("td", {}, actions));
  });
  const images = artifacts.filter((a) => IMAGE_RE.test(a.path)).map((a) =>
    h("figure", {}, h("img", { src: url(a.path), alt: a.path, loading: "lazy", class: "artifact-image" }), h("figcaption", {}, a.path)));
  return [table(["path", "size", "sha256", ""], rows), h("div", { class: "images" }, images), previews];
}

async function renderRun(main, runId) {
  // the run and all its numeric series are fetched at once (times only when x is time); the charts
  // draw as soon as their series arrive. The series' last_id is where live events start.
  const enc = encodeURIComponent(runId);
  const pre = window.mltrainPrefetch;
  const seriesP = pre && decodeURIComponent(pre.id) === runId ? pre.series.then(parseResponse) : api(`/api/runs/${enc}/series?fields=step,value`);
  const detailP = api(`/api/runs/${enc}`);
  const top = h("div", {}, h("h1", {}, "Run ", h("span", { class: "mono" }, runId)));
  const middle = h("div");
  const bottom = h("div");
  const chartsBox = h("div", { class: "charts", id: "charts" });
  const logBox = h("pre", { class: "log", id: "log" });
  fill(main, top,
    section("Charts", chartControls((m) => setMode(m).catch(showError), (l) => charts.forEach((c) => c.setLog(l))), chartsBox),
    middle,
    section("Output", h("label", { class: "muted" }, h("input", { type: "checkbox", id: "follow", checked: true }), " follow"), logBox),
    bottom);

  // charts: one per numeric series
  const charts = new Map();
  const lastIds = new Map();
  const addChart = (key, s) => {
    const box = h("div", { class: "chart", dataset: { key } });
    chartsBox.append(box);
    charts.set(key, new MetricChart(box, key, [{ label: key, step: s.step, ts: s.ts, value: s.value }], { mode: "step" }));
    lastIds.set(key, s.last_id);
  };
  const all = await seriesP;
  for (const key of Object.keys(all.series).sort()) addChart(key, { ...all.series[key], last_id: all.last_id });
  if (!all.count) chartsBox.append(h("p", { class: "muted", id: "no-charts" }, "no numeric metrics yet"));

  const d = await detailP;
  const r = d.run;
  document.title = `${r.id} · mltrain`;
  const actions = h("div", { class: "actions" });
  if (!d.terminal) {
    actions.append(h("button", { id: "cancel-run", onclick: async () => {
      try {
        await apiWrite(`/api/runs/${encodeURIComponent(r.id)}/cancel`);
        flash(`cancel of run ${r.id} requested`, "ok");
      } catch (err) { showError(err); }
    } }, "Cancel run"));
  }
  if (d.has_children) actions.append(h("a", { class: "button", href: `/compare?sweep=${encodeURIComponent(r.id)}` }, "Compare the sweep's runs"));
  const git = r.git_commit ? `${short(r.git_commit)}${r.git_dirty ? " (dirty)" : ""}` : null;
  const status = h("span", { id: "run-status" }, statusBadge(r.status));
  const snap = d.snapshot;
  fill(top,
    h("h1", {}, "Run ", h("span", { class: "mono" }, r.id), " ", status),
    actions,
    h("div", { class: "grid" },
      section("Overview", kv([
        ["experiment", r.experiment],
        ["created", fmtTime(r.created_at)],
        ["duration", fmtDuration(r.started_at || r.created_at, r.ended_at)],
        ["compute", r.compute],
        ["command", [r.script || "", ...(r.arguments || [])].join(" ")],
        ["overrides", (r.overrides || []).join(" ")],
        ["parent run", r.parent_run_id ? runLink(r.parent_run_id) : null],
        ["exit code", r.exit_code === null ? null : String(r.exit_code)],
        ["error", r.error],
        ["problems", (r.problems || []).length ? r.problems.map((p) => h("div", { class: "problem" }, p)) : undefined],
        ["tags", Object.entries(d.tags).map(([k, v]) => h("span", { class: "tag" }, v ? `${k}=${v}` : k))],
      ])),
      section("Environment, snapshot, git", kv([
        ["environment", r.env_name ? h("a", { href: `/environments#${r.env_hash || ""}` }, `${r.env_name} (${short(r.env_hash)})`) : null],
        ["snapshot", snap ? `${short(snap.id)} · ${snap.file_count ?? "?"} files · ${fmtBytes(snap.total_bytes)}` : null],
        ["source", r.source_dir],
        ["git commit", git],
      ]), snap && snap.files ? h("details", {}, h("summary", {}, "snapshot files"), table(["path", "size"], snap.files.map((f) => h("tr", {}, h("td", { class: "mono" }, f.path), h("td", { class: "num" }, fmtBytes(f.size)))))) : null),
      section("Status timeline", timeline(d.history, r)),
      section("Arguments", argsTable(d.args)),
    ),
    section("Metrics", Object.keys(d.scalars).length
      ? table(["metric", "latest"], Object.entries(d.scalars).map(([k, v]) => h("tr", {}, h("td", { class: "mono" }, k), h("td", { class: "num" }, fmtValue(v)))))
      : h("p", { class: "muted" }, "none yet")));
  fill(middle, Object.keys(d.tables).length ? section("Tables", loggedTables(d.tables)) : null);
  fill(bottom,
    section("Artifacts", artifactList(r.id, d.artifacts, d.terminal)),
    section("Registered models", d.models.length
      ? table(["model", "version", "format", "framework"], d.models.map((m) => h("tr", {}, h("td", {}, h("a", { href: `/models/${encodeURIComponent(m.name)}` }, m.name)), h("td", {}, m.version), h("td", {}, m.format), h("td", {}, `${m.framework || "-"} ${m.framework_version || ""}`))))
      : h("p", { class: "muted" }, "none")),
    section("Resolved config", h("details", {}, h("summary", {}, "config"), h("pre", { class: "config" }, JSON.stringify(r.config, null, 2)))));

  // x = time needs the points' times: fetched once, then kept up to date by the live events
  let buffering = null;
  let haveTimes = false;
  const setMode = async (mode) => {
    if (mode === "time" && !haveTimes) {
      buffering = [];
      try {
        const full = await api(`/api/runs/${enc}/series`);
        for (const [key, sr] of Object.entries(full.series)) {
          if (charts.has(key)) charts.get(key).lines[0] = { label: key, ...sr };
          else addChart(key, { ...sr, last_id: full.last_id });
          lastIds.set(key, full.last_id);
        }
        haveTimes = true;
      } finally {
        const queued = buffering;
        buffering = null;
        queued.forEach(applyMetrics);
      }
    }
    charts.forEach((c) => c.setMode(mode));
  };

  // the log so far
  let offset = 0;
  const appendLog = (text) => {
    logBox.append(text);
    if ($("#follow").checked) logBox.scrollTop = logBox.scrollHeight;
  };
  for (;;) {
    const part = await api(`/api/runs/${encodeURIComponent(r.id)}/log?offset=${offset}`);
    appendLog(part.text);
    offset = part.next_offset;
    if (part.next_offset - part.offset < 256 * 1024 || offset > LOG_CAP) break;
  }
  if (d.terminal) return;

  // live: one event stream for the charts, the log and the status
  const es = new EventSource(`/api/runs/${encodeURIComponent(r.id)}/events?after=${all.last_id}&offset=${offset}`);
  es.addEventListener("metrics", (ev) => {
    const m = JSON.parse(ev.data);
    if (buffering) buffering.push(m);
    else applyMetrics(m);
  });
  function applyMetrics(m) {
    for (const [key, s] of Object.entries(m.series)) {
      const seen = lastIds.get(key) || 0;
      let i = 0;
      while (i < s.id.length && s.id[i] <= seen) i++;
      if (i >= s.id.length) continue;
      const pts = { step: s.step.slice(i), ts: s.ts.slice(i), value: s.value.slice(i) };
      lastIds.set(key, s.id[s.id.length - 1]);
      if (charts.has(key)) charts.get(key).append(0, pts);
      else {
        const none = $("#no-charts");
        if (none) none.remove();
        addChart(key, { ...pts, last_id: s.id[s.id.length - 1] });
      }
    }
  }
  es.addEventListener("log", (ev) => {
    const l = JSON.parse(ev.data);
    if (l.offset === offset) { appendLog(l.text); offset = l.next_offset; }
  });
  es.addEventListener("status", (ev) => {
    const s = JSON.parse(ev.data);
    $("#run-status").replaceChildren(statusBadge(s.status));
  });
  es.addEventListener("end", () => {
    es.close();
    const btn = $("#cancel-run");
    if (btn) btn.remove();
  });
  window.addEventListener("beforeunload", () => es.close());
}
