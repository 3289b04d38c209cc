"use strict";
// Models (versions, aliases, tags, format, lineage), endpoints (state, URIs, request figures) and
// environments (spec, lock, size).

async function renderModels(main) {
  const models = await api("/api/models");
  const rows = models.map((m) => h("tr", {},
    h("td", {}, h("a", { href: `/models/${encodeURIComponent(m.name)}` }, m.name)),
    h("td", {}, m.version), h("td", {}, m.format), h("td", {}, `${m.framework || "-"} ${m.framework_version || ""}`),
    h("td", {}, m.aliases.map((a) => h("span", { class: "tag" }, `@${a}`))),
    h("td", {}, m.run_id ? runLink(m.run_id) : "-"), h("td", {}, fmtTime(m.created_at)), h("td", {}, m.archived ? "archived" : "")));
  fill(main, h("h1", {}, "Models"),
    rows.length ? table(["model", "latest version", "format", "framework", "aliases", "run", "registered", ""], rows, { id: "models" })
      : h("p", { class: "muted" }, "No models registered yet."));
}

async function renderModel(main, name) {
  const d = await api(`/api/models/${encodeURIComponent(name)}`);
  const reload = () => renderModel(main, name).catch(showError);
  const rows = d.versions.map((v) => {
    const lin = v.lineage;
    const archiveBtn = h("button", { class: "small", onclick: async () => {
      try {
        await apiWrite(`/api/models/${encodeURIComponent(name)}/versions/${v.version}/archive`, { archived: !v.archived });
        flash(`${name}:${v.version} ${v.archived ? "restored" : "archived"}`, "ok");
        reload();
      } catch (err) { showError(err); }
    } }, v.archived ? "Restore" : "Archive");
    return h("tr", { class: v.archived ? "archived" : "", dataset: { version: v.version } },
      h("td", {}, v.version), h("td", {}, v.aliases.map((a) => h("span", { class: "tag" }, `@${a}`))),
      h("td", {}, v.format), h("td", {}, `${v.framework || "-"} ${v.framework_version || ""}`),
      h("td", {}, Object.entries(v.tags).map(([k, x]) => h("span", { class: "tag" }, `${k}=${x}`))),
      h("td", {}, lin ? [runLink(lin.run), ` ${lin.experiment} · ${lin.status}`, h("br"), h("span", { class: "muted small" }, `env ${lin.environment || "-"} ${short(lin.environment_hash)} · snapshot ${short(lin.snapshot)} · git ${short(lin.git_commit)}`)] : "-"),
      h("td", { class: "mono" }, short(v.sha256)), h("td", {}, fmtTime(v.created_at)), h("td", {}, archiveBtn));
  });
  const versionSel = h("select", { name: "version", "aria-label": "version" }, d.versions.map((v) => h("option", { value: v.version }, v.version)));
  const aliasIn = h("input", { name: "alias", placeholder: "production", required: true, pattern: "[A-Za-z0-9_.\\-]+", size: 14 });
  const form = h("form", { class: "filters", id: "alias-form" }, h("label", {}, "version ", versionSel), h("label", {}, "alias ", aliasIn), h("button", { type: "submit" }, "Set alias"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await apiWrite(`/api/models/${encodeURIComponent(name)}/aliases`, { version: Number(versionSel.value), alias: aliasIn.value });
      flash(`${name}@${aliasIn.value} → version ${versionSel.value}`, "ok");
      reload();
    } catch (err) { showError(err); }
  });
  fill(main, h("h1", {}, "Model ", h("span", { class: "mono" }, name)),
    section("Versions", table(["version", "aliases", "format", "framework", "tags", "lineage", "sha256", "registered", ""], rows, { id: "versions" })),
    section("Actions", form));
}

async function renderEndpoints(main) {
  const eps = await api("/api/endpoints");
  const rows = eps.map((e) => {
    const out = h("div", { class: "ep-metrics" });
    const keyIn = h("input", { type: "password", placeholder: e.auth ? "endpoint key" : "no key needed", autocomplete: "off", size: 16, "aria-label": `key of ${e.name}` });
    let last = null;
    let timer = null;
    const read = async () => {
      try {
        const headers = keyIn.value ? { "X-Endpoint-Key": keyIn.value } : {};
        const m = await api(`/api/endpoints/${encodeURIComponent(e.name)}/metrics`, { headers });
        const rate = last ? (m.score_requests_total - last.score_requests_total) / Math.max(m.at - last.at, 1e-3) : null;
        last = m;
        const ms = (x) => (x === null || x === undefined ? "-" : `${(x * 1000).toFixed(1)} ms`);
        out.replaceChildren(kv([
          ["scoring requests", fmtValue(m.score_requests_total)],
          ["rate", rate === null ? "(measuring…)" : `${rate.toFixed(2)} req/s`],
          ["latency mean", ms(m.latency_mean_s)], ["p50 ≤", ms(m.latency_p50_s)], ["p99 ≤", ms(m.latency_p99_s)],
          ["errors", fmtValue(m.errors_total)], ["predictions", fmtValue(m.predictions_total)],
        ]));
      } catch (err) {
        clearInterval(timer);
        timer = null;
        out.replaceChildren(h("span", { class: "muted" }, err.message));
      }
    };
    const btn = h("button", { type: "button", class: "small", onclick: () => { last = null; clearInterval(timer); read(); timer = setInterval(read, 5000); } }, "Read metrics");
    return h("tr", {}, h("td", {}, e.name), h("td", {}, h("a", { href: `/models/${encodeURIComponent(e.model_name)}` }, `${e.model_name}:${e.model_version}`)),
      h("td", {}, e.target), h("td", {}, statusBadge(e.state), e.reason ? h("div", { class: "muted small" }, e.reason) : null),
      h("td", { class: "mono" }, e.scoring_uri || "-"), h("td", {}, e.auth ? "key" : "off"),
      h("td", {}, `cpu ${e.cpu ?? "-"} · ${e.workers ?? "-"} worker(s)${e.memory_gb ? ` · ${e.memory_gb} GB` : ""}`),
      h("td", {}, h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); btn.click(); } }, keyIn, " ", btn), out));
  });
  fill(main, h("h1", {}, "Endpoints"),
    rows.length ? table(["endpoint", "model", "target", "state", "scoring URI", "auth", "resources", "requests and latency (from /metrics; the key is not stored)"], rows, { id: "endpoints" })
      : h("p", { class: "muted" }, "No endpoints. Deploy one with `mltrain endpoints deploy NAME`."));
}

async function renderEnvironments(main) {
  const envs = await api("/api/environments");
  const rows = envs.map((e) => h("tr", { id: e.hash },
    h("td", {}, e.name, e.version ? ` ${e.version}` : ""), h("td", {}, e.builder), h("td", { class: "mono" }, short(e.hash, 16)),
    h("td", {}, e.python || "-"), h("td", { class: "num" }, e.present === false ? "removed" : fmtBytes(e.size_bytes)), h("td", {}, fmtTime(e.created_at)), h("td", {}, fmtTime(e.last_used_at)),
    h("td", {}, h("details", {}, h("summary", {}, "spec"), h("pre", {}, JSON.stringify(e.spec, null, 2))),
      e.lock ? h("details", {}, h("summary", {}, "lock"), h("pre", {}, e.lock)) : null)));
  fill(main, h("h1", {}, "Environments"),
    rows.length ? table(["name", "builder", "hash", "python", "size", "built", "last used", ""], rows, { id: "environments" })
      : h("p", { class: "muted" }, "No environments built yet."));
  if (location.hash) {
    const row = document.getElementById(location.hash.slice(1));
    if (row) { row.classList.add("highlight"); row.scrollIntoView(); }
  }
}
