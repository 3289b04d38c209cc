"use strict";
// The runs page: filters, columns chosen by the user (metrics, arguments, tags; kept in the URL and in
// this browser), sort by a click on a header (on the server), paging; a sweep is one row that opens
// to its trials, best first by the sweep's metric.

const STATUSES = ["Queued", "Preparing", "Running", "Finalizing", "Completed", "Failed", "Canceled"];
const COLUMNS_KEY = "mltrain-runs-columns";
const COLUMN_KINDS = [["metric", "Metrics", "metrics"], ["arg", "Arguments", "arguments"], ["tag", "Tags", "tags"]];
const FIXED = [["id", "run"], ["experiment", "experiment"], ["status", "status"], ["created_at", "created"]];
const DEFAULT_METRICS = 4;
const SWEEP_COUNTER = /^children_/;

function runsQuery(q) {
  const p = new URLSearchParams();
  for (const k of ["experiment", "status", "tag", "metric", "sort", "flat", "offset", "limit"]) if (q.get(k)) p.set(k, q.get(k));
  return p;
}

// The chosen columns ("metric:NAME", "arg:NAME", "tag:KEY"): the URL's, else this browser's, else the
// most common metrics of recent runs (sweep counters left out).
function chosenColumns(q, available) {
  if (q.has("col")) return q.getAll("col").filter(Boolean);
  try {
    const kept = JSON.parse(localStorage.getItem(COLUMNS_KEY) || "null");
    if (Array.isArray(kept)) return kept.filter((c) => typeof c === "string");
  } catch (_) { /* none kept */ }
  return available.metrics.map((m) => m.name).filter((n) => !SWEEP_COUNTER.test(n)).slice(0, DEFAULT_METRICS).map((n) => `metric:${n}`);
}

const columnName = (col) => col.slice(col.indexOf(":") + 1);
function cellValue(r, col) {
  const name = columnName(col);
  if (col.startsWith("metric:")) return r.metrics[name];
  if (col.startsWith("arg:")) return r.args[name];
  return r.tags[name];
}

function runRow(r, cols, selected, opts) {
  const check = h("input", { type: "checkbox", "aria-label": `select ${r.id}`, checked: selected.has(r.id), onchange: (e) => {
    if (e.target.checked) selected.add(r.id); else selected.delete(r.id);
    $("#compare-btn").disabled = selected.size < 2;
  } });
  const trial = r.tags["mltrain.sweep.trial"];
  return h("tr", { class: opts.child ? "child" : "", dataset: { run: r.id } },
    h("td", {}, check),
    h("td", { class: "toggle nowrap" }, opts.child && trial !== undefined ? h("span", { class: "muted small" }, `#${trial}`) : null),
    h("td", { class: "nowrap" }, runLink(r.id)),
    h("td", {}, r.experiment),
    h("td", {}, statusBadge(r.status)),
    h("td", { class: "nowrap" }, fmtTime(r.created_at)),
    h("td", { class: "nowrap" }, fmtDuration(r.started_at || r.created_at, r.ended_at)),
    cols.map((c) => {
      const v = cellValue(r, c);
      return h("td", { class: typeof v === "number" ? "num" : "", title: v === undefined ? null : fmtFull(v), dataset: { col: c } }, fmtValue(v));
    }),
    h("td", { class: "tags" }, tagChips(r.tags, opts.internal)));
}

// The column chooser: a checkbox per metric, argument and tag name of recent runs (with a filter).
function columnChooser(available, cols, internal, onChange) {
  const chosen = new Set(cols);
  const filter = h("input", { type: "search", placeholder: "filter names", "aria-label": "filter column names", size: 14 });
  const groups = COLUMN_KINDS.map(([kind, title, field]) => {
    const names = available[field].filter((x) => kind !== "tag" || internal || !isInternalTag(x.name));
    const known = new Set(names.map((x) => x.name));
    const extra = cols.filter((c) => c.startsWith(`${kind}:`) && !known.has(columnName(c))).map((c) => ({ name: columnName(c), runs: null }));
    return h("fieldset", { class: "col-group" }, h("legend", {}, title),
      [...names, ...extra].length ? [...names, ...extra].map((x) => {
        const col = `${kind}:${x.name}`;
        return h("label", { class: "col-option", dataset: { name: x.name.toLowerCase() } },
          h("input", { type: "checkbox", value: col, checked: chosen.has(col), onchange: (e) => {
            const next = cols.filter((c) => c !== col);
            if (e.target.checked) next.push(col);
            onChange(next);
          } }), " ", h("span", { class: "mono" }, x.name), x.runs ? h("span", { class: "muted small" }, ` ${x.runs}`) : null);
      }) : h("p", { class: "muted small" }, "none"));
  });
  filter.addEventListener("input", () => {
    const needle = filter.value.toLowerCase();
    groups.forEach((g) => g.querySelectorAll(".col-option").forEach((o) => { o.hidden = !o.dataset.name.includes(needle); }));
  });
  return h("details", { class: "chooser", id: "columns" },
    h("summary", {}, `Columns (${cols.length})`),
    h("div", { class: "chooser-body" }, h("div", { class: "controls" }, filter,
      h("button", { type: "button", class: "small", onclick: () => onChange([]) }, "none")), groups));
}

async function renderRuns(main) {
  const [exps, available] = await Promise.all([api("/api/experiments"), api("/api/columns")]);
  const q = query();
  const sel = (name, options, value) => h("select", { name, "aria-label": name },
    options.map(([v, label]) => h("option", { value: v, selected: v === (value || "") }, label)));
  const form = h("form", { class: "filters", id: "filters" },
    h("label", {}, "experiment ", sel("experiment", [["", "all"], ...exps.map((e) => [e.name, `${e.name} (${e.runs})`])], q.get("experiment"))),
    h("label", {}, "status ", sel("status", [["", "any"], ...STATUSES.map((x) => [x, x])], q.get("status"))),
    h("label", {}, "tag ", h("input", { name: "tag", placeholder: "key or key=value", value: q.get("tag") || "", size: 14 })),
    h("label", {}, "metric ", h("input", { name: "metric", placeholder: "accuracy>=0.9", value: q.get("metric") || "", size: 14 })),
    h("label", { title: "list the runs of sweeps as rows of their own" }, h("input", { type: "checkbox", name: "flat", value: "1", checked: q.get("flat") === "1" }), " sweep runs as rows"),
    h("label", { title: "mltrain's own tags (sweep bookkeeping)" }, h("input", { type: "checkbox", name: "internal", value: "1", checked: q.get("internal") === "1" }), " internal tags"),
    h("button", { type: "submit" }, "Apply"));
  const navigate = (p) => { history.pushState(null, "", `/?${p}`); loadRuns().catch(showError); };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (v) p.set(k, v);
    const now = query();
    for (const k of ["sort", "col"]) for (const v of now.getAll(k)) p.append(k, v);
    navigate(p);
  });
  const selected = new Set();
  const compareBtn = h("button", { id: "compare-btn", disabled: true, onclick: () => {
    location.href = `/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`;
  } }, "Compare selected");
  const chooserBox = h("div", { class: "chooser-box" });
  fill(main, h("h1", {}, "Runs"), form, chooserBox, h("div", { id: "runs-table", class: "runs-box" }),
    h("div", { class: "pager", id: "pager" }, compareBtn));

  const setColumns = (cols) => {
    localStorage.setItem(COLUMNS_KEY, JSON.stringify(cols));
    const p = query();
    p.delete("col");
    for (const c of cols) p.append("col", c);
    if (!cols.length) p.set("col", "");
    history.replaceState(null, "", `/?${p}`);
    loadRuns(true).catch(showError);
  };

  let last = null;
  async function loadRuns(keepData = false) {
    const now = query();
    const cols = chosenColumns(now, available);
    const internal = now.get("internal") === "1";
    const open = $("#columns") && $("#columns").open;
    fill(chooserBox, columnChooser(available, cols, internal, setColumns));
    if (open) $("#columns").open = true;
    if (!keepData || !last) {
      const p = runsQuery(now);
      if (!p.get("limit")) p.set("limit", "50");
      try {
        last = await api(`/api/runs?${p}`);
      } catch (err) {
        showError(err);
        $("#runs-table").replaceChildren(h("p", { class: "muted" }, "No runs: fix the filter."));
        return;
      }
      $("#flash").hidden = true;
    }
    const data = last;
    const sort = now.get("sort") || "-created_at";
    const sortKey = sort.replace(/^-/, "");
    const header = (key, label) => {
      const active = sortKey === key;
      const next = active && sort.startsWith("-") ? key : `-${key}`;
      return h("button", { type: "button", class: "sort", dataset: { sort: key }, title: `sort by ${label}`,
        onclick: () => { const p = query(); p.set("sort", next); p.delete("offset"); navigate(p); } },
      label, active ? (sort.startsWith("-") ? " ▼" : " ▲") : "");
    };
    const rows = data.runs.map((r) => {
      const tr = runRow(r, cols, selected, { internal });
      if (r.children > 0) {
        const btn = h("button", { class: "link", title: "show the runs of this sweep, best first" }, `▸ ${r.children}`);
        btn.addEventListener("click", () => openSweep(tr, r, cols, selected, btn, internal).catch(showError));
        tr.querySelector(".toggle").append(btn, " ", h("a", { href: `/compare?sweep=${encodeURIComponent(r.id)}`, class: "small" }, "sweep"));
      }
      return tr;
    });
    const headers = ["", "", ...FIXED.map(([k, label]) => header(k, label)), "duration",
      ...cols.map((c) => header(c, columnName(c))), "tags"];
    $("#runs-table").replaceChildren(rows.length ? table(headers, rows, { id: "runs" }) : h("p", { class: "muted", id: "no-runs" }, "No runs match."));
    const first = data.total ? data.offset + 1 : 0;
    const lastRow = data.offset + data.runs.length;
    const go = (offset) => { const p = query(); p.set("offset", String(Math.max(0, offset))); navigate(p); };
    fill($("#pager"),
      h("button", { disabled: data.offset === 0, onclick: () => go(data.offset - data.limit) }, "‹ Prev"),
      h("span", { id: "page-info" }, `${first}–${lastRow} of ${data.total}`),
      h("button", { disabled: lastRow >= data.total, onclick: () => go(data.offset + data.limit) }, "Next ›"),
      compareBtn);
  }
  window.onpopstate = () => loadRuns().catch(showError);
  await loadRuns();
}

// A sweep's trials under its row, best first by the sweep's primary metric.
async function openSweep(tr, r, cols, selected, button, internal) {
  if (button.dataset.open === "1") {
    document.querySelectorAll(`tr[data-parent="${CSS.escape(r.id)}"]`).forEach((x) => x.remove());
    button.dataset.open = "0";
    button.textContent = `▸ ${r.children}`;
    return;
  }
  const metric = r.tags["mltrain.sweep.primary_metric"];
  const sort = metric ? `${r.tags["mltrain.sweep.goal"] === "minimize" ? "" : "-"}metric:${metric}` : "created_at";
  const data = await api(`/api/runs?parent=${encodeURIComponent(r.id)}&sort=${encodeURIComponent(sort)}&limit=500`);
  let after = tr;
  for (const c of data.runs) {
    const row = runRow(c, cols, selected, { child: true, internal });
    row.dataset.parent = r.id;
    after.after(row);
    after = row;
  }
  button.dataset.open = "1";
  button.textContent = `▾ ${r.children}`;
}
