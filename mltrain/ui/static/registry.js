"use strict";
// Models (every version's aliases; a page per model and per version with its lineage, files, input
// schema and endpoints) and environments (name and version, spec, lock, size, the runs that used
// them). Write buttons only when the dashboard allows writes.

function aliasChip(name, alias, writable, done) {
  const chip = h("span", { class: "tag alias", dataset: { alias } }, `@${alias}`);
  if (writable) {
    chip.append(h("button", { type: "button", class: "chip-x", title: `remove the alias ${alias}`, "aria-label": `remove alias ${alias}`, onclick: async () => {
      try {
        await apiWrite(`/api/models/${encodeURIComponent(name)}/aliases/${encodeURIComponent(alias)}`, {}, "DELETE");
        flash(`${name}@${alias} removed`, "ok");
        done();
      } catch (err) { showError(err); }
    } }, "×"));
  }
  return chip;
}

async function renderModels(main) {
  const models = await api("/api/models");
  const rows = models.map((m) => h("tr", { dataset: { model: m.name } },
    h("td", {}, modelLink(m.name)),
    h("td", {}, modelLink(m.name, m.version)),
    h("td", { class: "versions" }, m.versions.map((v) => [h("span", { class: v.archived ? "version archived" : "version" },
      modelLink(m.name, v.version), " ", v.aliases.map((a) => h("span", { class: "tag" }, `@${a}`))), " "])),
    h("td", {}, m.format), h("td", {}, `${m.framework || "-"} ${m.framework_version || ""}`),
    h("td", { class: "nowrap" }, m.run_id ? runLink(m.run_id) : "-"), h("td", { class: "nowrap" }, fmtTime(m.created_at)), h("td", {}, m.archived ? "archived" : "")));
  fill(main, h("h1", {}, "Models"),
    rows.length ? table(["model", "latest", "versions and aliases", "format", "framework", "run", "registered", ""], rows, { id: "models" })
      : h("p", { class: "muted" }, "No models registered yet."));
}

function lineageText(lin) {
  if (!lin) return "-";
  return [runLink(lin.run), ` ${lin.experiment} · ${lin.status}`, h("br"),
    h("span", { class: "muted small" }, `env ${lin.environment || "-"} ${short(lin.environment_hash)} · snapshot ${short(lin.snapshot)} · git ${short(lin.git_commit)}`)];
}

async function renderModel(main, name) {
  const d = await api(`/api/models/${encodeURIComponent(name)}`);
  const writable = await canWrite();
  const reload = () => renderModel(main, name).catch(showError);
  const rows = d.versions.map((v) => {
    const archiveBtn = writable ? h("button", { class: "small", onclick: async () => {
      try {
        await apiWrite(`/api/models/${encodeURIComponent(name)}/versions/${v.version}/archive`, { archived: !v.archived });
        flash(`${name}:${v.version} ${v.archived ? "restored" : "archived"}`, "ok");
        reload();
      } catch (err) { showError(err); }
    } }, v.archived ? "Restore" : "Archive") : null;
    return h("tr", { class: v.archived ? "archived" : "", dataset: { version: v.version } },
      h("td", {}, modelLink(name, v.version)), h("td", {}, v.aliases.map((a) => aliasChip(name, a, writable, reload))),
      h("td", {}, v.format), h("td", {}, `${v.framework || "-"} ${v.framework_version || ""}`),
      h("td", {}, Object.entries(v.tags).map(([k, x]) => h("span", { class: "tag" }, `${k}=${x}`))),
      h("td", {}, lineageText(v.lineage)),
      h("td", { class: "mono" }, short(v.sha256)), h("td", { class: "nowrap" }, fmtTime(v.created_at)), writable ? h("td", {}, archiveBtn) : null);
  });
  fill(main, h("h1", {}, "Model ", h("span", { class: "mono" }, name)),
    section("Versions", table(["version", "aliases", "format", "framework", "tags", "lineage", "sha256", "registered", ...(writable ? [""] : [])], rows, { id: "versions" })),
    writable ? section("Actions", aliasForm(name, d.versions.map((v) => v.version), null, reload)) : null);
}

function aliasForm(name, versions, selected, done) {
  const versionSel = h("select", { name: "version", "aria-label": "version" }, versions.map((v) => h("option", { value: v, selected: v === selected }, v)));
  const aliasIn = h("input", { name: "alias", placeholder: "production", required: true, pattern: "[A-Za-z0-9_.\\-]+", size: 14 });
  const form = h("form", { class: "filters", id: "alias-form" }, h("label", {}, "version ", versionSel), h("label", {}, "alias ", aliasIn), h("button", { type: "submit" }, "Set alias"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await apiWrite(`/api/models/${encodeURIComponent(name)}/aliases`, { version: Number(versionSel.value), alias: aliasIn.value });
      flash(`${name}@${aliasIn.value} → version ${versionSel.value}`, "ok");
      done();
    } catch (err) { showError(err); }
  });
  return form;
}

async function renderVersion(main, name, version) {
  const v = await api(`/api/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`);
  const writable = await canWrite();
  const reload = () => renderVersion(main, name, version).catch(showError);
  document.title = `${name}:${v.version} · mltrain`;
  const lin = v.lineage;
  const env = v.environment;
  const found = v.input_schema;
  const schemaBox = h("div", { id: "input-schema" }, found.schema
    ? [h("p", { class: "muted small" }, `from endpoint ${found.endpoint}'s /swagger.json`), h("pre", { class: "config" }, JSON.stringify(found.schema, null, 2))]
    : h("p", { class: "muted" }, `not known: ${found.note} (an endpoint serving this version describes its input)`));
  const metrics = Object.entries(v.run_metrics);
  fill(main,
    h("h1", {}, "Model ", modelLink(name), ` version ${v.version} `, v.archived ? h("span", { class: "status status-canceled" }, "archived") : null),
    h("p", { class: "aliases" }, v.aliases.length ? v.aliases.map((a) => aliasChip(name, a, writable, reload)) : h("span", { class: "muted" }, "no alias"),
      " ", h("span", { class: "muted small" }, "other versions: "), v.versions.filter((x) => x !== v.version).map((x) => [modelLink(name, x), " "])),
    h("div", { class: "grid" },
      section("Overview", kv([
        ["description", v.description],
        ["format", v.format],
        ["framework", `${v.framework || "-"} ${v.framework_version || ""}`],
        ["registered", fmtTime(v.created_at)],
        ["sha256", h("span", { class: "mono" }, v.sha256)],
        ["resources", `cpu ${v.cpu ?? "-"} · memory ${v.memory_gb ? `${v.memory_gb} GB` : "-"}`],
        ["tags", Object.entries(v.tags).map(([k, x]) => h("span", { class: "tag" }, `${k}=${x}`))],
        ["properties", Object.entries(v.properties).map(([k, x]) => h("span", { class: "tag" }, `${k}=${x}`))],
      ])),
      section("Lineage", kv([
        lin ? ["data", h("span", { id: "lineage-data" }, lin.data.length ? lin.data.map((x) => [dataTarget(x), " "]) : h("span", { class: "muted" }, "none recorded"))] : undefined,
        ["run", lin ? [runLink(lin.run), ` ${lin.experiment} · `, statusBadge(lin.status)] : "-"],
        ["environment", env ? h("a", { href: `/environments#${env.hash}` }, `${env.name}${env.version ? ` ${env.version}` : ""} (${env.builder}, ${short(env.hash)})`)
          : lin && lin.environment ? `${lin.environment} (${short(lin.environment_hash)})` : "-"],
        ["snapshot", lin ? short(lin.snapshot) : "-"],
        ["git commit", lin ? short(lin.git_commit) : "-"],
        ["endpoints", v.endpoints.length ? v.endpoints.map((e) => [h("a", { href: `/endpoints/${encodeURIComponent(e.name)}` }, e.name), " ", statusBadge(e.state), " "]) : "none"],
      ]))),
    section("Metrics of the run that made it", metrics.length
      ? table(["metric", "latest"], metrics.map(([k, x]) => h("tr", {}, h("td", { class: "mono" }, k), h("td", { class: "num", title: fmtFull(x) }, fmtFull(x)))), { id: "run-metrics" })
      : h("p", { class: "muted" }, lin ? "none" : "registered without a run")),
    section(`Files · ${fmtBytes(v.size)}`, table(["file", "size", "sha256"], v.files.map((f) => h("tr", {}, h("td", { class: "mono" }, f.relpath), h("td", { class: "num" }, fmtBytes(f.size)), h("td", { class: "mono" }, short(f.sha256)))), { id: "files" })),
    section("Input schema", schemaBox),
    writable ? section("Actions", aliasForm(name, v.versions, v.version, reload)) : null);
}

async function renderEnvironments(main) {
  const envs = await api("/api/environments");
  const rows = envs.map((e) => h("tr", { id: e.hash },
    h("td", {}, e.name), h("td", {}, e.version || "-"), h("td", {}, e.builder), h("td", { class: "mono" }, short(e.hash, 16)),
    h("td", {}, e.python || "-"), h("td", { class: "num" }, e.present === false ? "removed" : fmtBytes(e.size_bytes)),
    h("td", { class: "nowrap" }, fmtTime(e.created_at)), h("td", { class: "nowrap" }, fmtTime(e.last_used_at)),
    h("td", { class: "env-runs" }, e.runs.count ? [h("span", {}, `${e.runs.count} run${e.runs.count === 1 ? "" : "s"}: `), e.runs.runs.map((r) => [runLink(r.id), " "]),
      e.runs.count > e.runs.runs.length ? h("span", { class: "muted small" }, "…") : null] : h("span", { class: "muted" }, "none")),
    h("td", {}, h("details", {}, h("summary", {}, "spec"), h("pre", {}, JSON.stringify(e.spec, null, 2))),
      e.lock ? h("details", {}, h("summary", {}, "lock"), h("pre", {}, e.lock)) : null)));
  fill(main, h("h1", {}, "Environments"),
    rows.length ? table(["name", "version", "builder", "hash", "python", "size", "built", "last used", "used by", ""], rows, { id: "environments" })
      : h("p", { class: "muted" }, "No environments built yet."));
  if (location.hash) {
    const row = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (row) { row.classList.add("highlight"); row.scrollIntoView(); }
  }
}
