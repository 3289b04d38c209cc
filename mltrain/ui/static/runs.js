"use strict";
// The runs page: filters, sort by any metric, server-side paging; a sweep is one row that opens.

const STATUSES = ["Queued", "Preparing", "Running", "Finalizing", "Completed", "Failed", "Canceled"];
const SORTS = [["-created_at", "newest first"], ["created_at", "oldest first"], ["status", "status"], ["experiment", "experiment"]];

function runsQuery(q) {
  const p = new URLSearchParams();
  for (const k of ["experiment", "status", "tag", "metric", "sort", "flat", "offset", "limit", "parent"]) {
    if (q.get(k)) p.set(k, q.get(k));
  }
  return p;
}

function metricColumns(runs, sort) {
  const keys = [];
  const sortKey = sort && sort.replace(/^-/, "").startsWith("metric:") ? sort.replace(/^-/, "").slice(7) : null;
  if (sortKey) keys.push(sortKey);
  for (const r of runs) for (const k of Object.keys(r.metrics)) if (!keys.includes(k)) keys.push(k);
  return keys.slice(0, 8);
}

function runRow(r, cols, selected, child) {
  const check = h("input", { type: "checkbox", "aria-label": `select ${r.id}`, onchange: (e) => {
    if (e.target.checked) selected.add(r.id); else selected.delete(r.id);
    $("#compare-btn").disabled = selected.size < 2;
  } });
  const tr = h("tr", { class: child ? "child" : "", dataset: { run: r.id } },
    h("td", {}, check),
    h("td", { class: "toggle" }),
    h("td", {}, runLink(r.id)),
    h("td", {}, r.experiment),
    h("td", {}, statusBadge(r.status)),
    h("td", {}, fmtTime(r.created_at)),
    h("td", {}, fmtDuration(r.started_at || r.created_at, r.ended_at)),
    cols.map((k) => h("td", { class: "num" }, fmtValue(r.metrics[k]))),
    h("td", {}, Object.entries(r.tags).map(([k, v]) => h("span", { class: "tag" }, v ? `${k}=${v}` : k))),
  );
  return tr;
}

async function openSweep(tr, r, cols, selected, button) {
  if (button.dataset.open === "1") {
    document.querySelectorAll(`tr[data-parent="${CSS.escape(r.id)}"]`).forEach((x) => x.remove());
    button.dataset.open = "0";
    button.textContent = `▸ ${r.children}`;
    return;
  }
  const data = await api(`/api/runs?parent=${encodeURIComponent(r.id)}&sort=created_at&limit=500`);
  let after = tr;
  for (const c of data.runs) {
    const row = runRow(c, cols, selected, true);
    row.dataset.parent = r.id;
    after.after(row);
    after = row;
  }
  button.dataset.open = "1";
  button.textContent = `▾ ${r.children}`;
}

async function renderRuns(main) {
  const q = query();
  const [exps, keys] = await Promise.all([api("/api/experiments"), api("/api/metric-keys")]);
  const sel = (name, options, value) => h("select", { name, "aria-label": name },
    options.map(([v, label]) => h("option", { value: v, selected: v === (value || "") }, label)));
  const form = h("form", { class: "filters", id: "filters" },
    h("label", {}, "experiment ", sel("experiment", [["", "all"], ...exps.map((e) => [e.name, `${e.name} (${e.runs})`])], q.get("experiment"))),
    h("label", {}, "status ", sel("status", [["", "any"], ...STATUSES.map((s) => [s, s])], q.get("status"))),
    h("label", {}, "tag ", h("input", { name: "tag", placeholder: "key or key=value", value: q.get("tag") || "", size: 14 })),
    h("label", {}, "metric ", h("input", { name: "metric", placeholder: "accuracy>=0.9", value: q.get("metric") || "", size: 14 })),
    h("label", {}, "sort ", sel("sort", [...SORTS, ...keys.flatMap((k) => [[`-metric:${k}`, `${k} ↓`], [`metric:${k}`, `${k} ↑`]])], q.get("sort") || "-created_at")),
    h("label", { title: "list the runs of sweeps as rows of their own" }, h("input", { type: "checkbox", name: "flat", value: "1", checked: q.get("flat") === "1" }), " sweep runs as rows"),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (v) p.set(k, v);
    history.pushState(null, "", `/?${p}`);
    loadRuns();
  });
  const selected = new Set();
  const compareBtn = h("button", { id: "compare-btn", disabled: true, onclick: () => {
    location.href = `/compare?runs=${[...selected].map(encodeURIComponent).join(",")}`;
  } }, "Compare selected");
  fill(main, h("h1", {}, "Runs"), form, h("div", { id: "runs-table" }), h("div", { class: "pager", id: "pager" }), compareBtn);

  async function loadRuns() {
    const p = runsQuery(query());
    if (!p.get("limit")) p.set("limit", "50");
    let data;
    try {
      data = await api(`/api/runs?${p}`);
    } catch (err) {
      showError(err);
      $("#runs-table").replaceChildren(h("p", { class: "muted" }, "No runs: fix the filter."));
      return;
    }
    $("#flash").hidden = true;
    const cols = metricColumns(data.runs, p.get("sort"));
    const rows = data.runs.map((r) => {
      const tr = runRow(r, cols, selected, false);
      if (r.children > 0) {
        const btn = h("button", { class: "link", title: "show the runs of this sweep" }, `▸ ${r.children}`);
        btn.addEventListener("click", () => openSweep(tr, r, cols, selected, btn).catch(showError));
        tr.querySelector(".toggle").append(btn, " ", h("a", { href: `/compare?sweep=${encodeURIComponent(r.id)}`, class: "small" }, "sweep"));
      }
      return tr;
    });
    const headers = ["", "", "run", "experiment", "status", "created", "duration", ...cols, "tags"];
    $("#runs-table").replaceChildren(rows.length ? table(headers, rows, { id: "runs" }) : h("p", { class: "muted", id: "no-runs" }, "No runs match."));
    const first = data.total ? data.offset + 1 : 0;
    const last = data.offset + data.runs.length;
    const go = (offset) => {
      const next = query();
      next.set("offset", String(Math.max(0, offset)));
      history.pushState(null, "", `/?${next}`);
      loadRuns();
    };
    $("#pager").replaceChildren(
      h("button", { disabled: data.offset === 0, onclick: () => go(data.offset - data.limit) }, "‹ Prev"),
      h("span", { id: "page-info" }, `${first}–${last} of ${data.total}`),
      h("button", { disabled: last >= data.total, onclick: () => go(data.offset + data.limit) }, "Next ›"));
  }
  window.onpopstate = () => loadRuns();
  await loadRuns();
}
