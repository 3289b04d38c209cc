"use strict";
// Data assets: the list (latest version, versions, aliases), an asset's versions, and a version's page:
// source and datastore, its lineage as links (the run that wrote it → this version → the runs that read
// it → the models registered from them) and its manifest as a file tree in a scroll box, a page at a time.
// Also the data a run read and wrote, for the run page.

const datastoreText = (v) => `${v.datastore.name} (${v.datastore.kind}, ${v.stored ? "stored by sha256" : "referenced where it is"})`;
const aliasChips = (aliases) => aliases.map((a) => h("span", { class: "tag" }, `@${a}`));

// A run's inputs and outputs (or a model's run's inputs): a data version's link, else the plain URI.
function dataTarget(x) {
  return x.name ? dataLink(x.name, x.version) : h("span", { class: "mono" }, x.uri || "-");
}

function runDataTable(inputs, outputs) {
  const rows = [...inputs.map((x) => ["input", x]), ...outputs.map((x) => ["output", x])].map(([direction, x]) =>
    h("tr", { dataset: { direction, key: x.key } }, h("td", {}, direction), h("td", { class: "mono" }, x.key),
      h("td", {}, dataTarget(x)), h("td", { class: "mono", title: x.digest || "" }, short(x.digest)), h("td", {}, x.mode || "-")));
  return table(["", "name", "data", "digest", "mode"], rows, { id: "run-data" });
}

async function renderDataList(main) {
  const assets = await api("/api/data");
  const rows = assets.map((a) => h("tr", { class: a.archived ? "archived" : "", dataset: { asset: a.name } },
    h("td", { class: "nowrap" }, dataLink(a.name)),
    h("td", { class: "nowrap" }, dataLink(a.name, a.version)),
    h("td", { class: "num" }, a.versions.length),
    h("td", { class: "nowrap" }, a.versions.flatMap((v) => v.aliases.map((x) => h("span", { class: "tag" }, `@${x} → ${v.version}`)))),
    h("td", {}, a.type), h("td", { class: "num" }, a.file_count), h("td", { class: "num nowrap" }, fmtBytes(a.size)),
    h("td", {}, a.datastore.name), h("td", { class: "nowrap" }, fmtTime(a.created_at)), h("td", {}, a.archived ? "archived" : "")));
  fill(main, h("h1", {}, "Data"),
    rows.length ? table(["asset", "latest", "versions", "aliases", "type", "files", "size", "datastore", "created", ""], rows, { id: "data-assets" })
      : h("p", { class: "muted" }, "No data assets yet: mltrain data create NAME PATH records one."));
}

async function renderDataAsset(main, name) {
  const d = await api(`/api/data/${encodeURIComponent(name)}`);
  document.title = `${name} · data · mltrain`;
  const rows = d.versions.map((v) => h("tr", { class: v.archived ? "archived" : "", dataset: { version: v.version } },
    h("td", { class: "nowrap" }, dataLink(name, v.version)), h("td", { class: "nowrap" }, aliasChips(v.aliases)), h("td", {}, v.type),
    h("td", { class: "num" }, v.file_count), h("td", { class: "num nowrap" }, fmtBytes(v.size)),
    h("td", { class: "mono", title: v.digest }, short(v.digest)), h("td", { class: "nowrap" }, datastoreText(v)),
    h("td", { class: "nowrap" }, v.producer_run_id ? runLink(v.producer_run_id) : "-"),
    h("td", { class: "tags" }, tagChips(v.tags, true)), h("td", { class: "nowrap" }, fmtTime(v.created_at)), h("td", {}, v.archived ? "archived" : "")));
  fill(main, h("h1", {}, "Data asset ", h("span", { class: "mono" }, name)),
    section("Versions", table(["version", "aliases", "type", "files", "size", "digest", "datastore", "produced by", "tags", "created", ""], rows, { id: "data-versions" })));
}

function lineageFlow(v) {
  const lin = v.lineage;
  const producers = [lin.produced_by, ...lin.written_by].filter(Boolean);
  const models = lin.read_by.flatMap((r) => r.models);
  const step = (title, id, ...content) => h("div", { class: "flow-step", id }, h("div", { class: "muted small" }, title), content);
  const arrow = () => h("div", { class: "flow-arrow", "aria-hidden": "true" }, "→");
  return h("div", { class: "flow", id: "lineage" },
    step("produced by", "lineage-producer", producers.length ? producers.map((p) => h("div", {}, runLink(p.run), " ", p.status ? statusBadge(p.status) : null))
      : h("span", { class: "muted" }, "no run (created with mltrain data create)")),
    arrow(),
    step("this version", "lineage-version", h("span", { class: "mono" }, v.ref)),
    arrow(),
    step("read by", "lineage-readers", lin.read_by.length ? lin.read_by.map((r) => h("div", {}, runLink(r.run), " ", h("span", { class: "muted small" }, `as ${r.key}`)))
      : h("span", { class: "muted" }, "no runs yet"),
    lin.read_by_total > lin.read_by.length ? h("div", { class: "muted small" }, `the newest ${lin.read_by.length} of ${lin.read_by_total} runs`) : null),
    arrow(),
    step("models from those runs", "lineage-models", models.length ? models.map((m) => h("div", {}, modelLink(m.name, m.version))) : h("span", { class: "muted" }, "none")));
}

function readersTable(lin) {
  return table(["run", "status", "as", "mode", "digest", "models registered from it"], lin.read_by.map((r) => h("tr", { dataset: { run: r.run } },
    h("td", { class: "nowrap" }, runLink(r.run)), h("td", {}, r.status ? statusBadge(r.status) : "-"), h("td", { class: "mono" }, r.key),
    h("td", {}, r.mode || "-"), h("td", { class: "mono", title: r.digest || "" }, short(r.digest)),
    h("td", {}, r.models.length ? r.models.map((m) => [modelLink(m.name, m.version), " "]) : "-"))), { id: "data-readers" });
}

// The manifest as a file tree in a scroll box: a page of entries at a time, "more" for the next page.
function manifestView(name, version, first) {
  const entries = [...first.entries];
  const box = h("div", { class: "manifest-box", id: "manifest" });
  const status = h("p", { class: "muted small", id: "manifest-count" });
  const more = h("button", { type: "button", id: "manifest-more" });
  const fileRow = (f) => h("li", { class: "file", dataset: { path: f.path } },
    h("span", { class: "mono" }, f.name), " ", h("span", { class: "muted small" }, fmtBytes(f.size)), " ",
    h("span", { class: "mono muted small", title: f.sha256 || f.checksum || "" }, f.sha256 ? `sha256 ${short(f.sha256)}` : f.checksum || "-"));
  const draw = () => {
    fill(box, treeView(fileTree(entries.map((e) => ({ ...e, path: e.relpath }))), fileRow));
    status.textContent = entries.length < first.total ? `the first ${entries.length} of ${first.total} files (by path)` : `${first.total} file${first.total === 1 ? "" : "s"}`;
    more.hidden = entries.length >= first.total;
    more.textContent = `Show ${Math.min(first.limit, first.total - entries.length)} more`;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const next = await api(`/api/data/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}?offset=${entries.length}&limit=${first.limit}`);
      entries.push(...next.manifest.entries);
      draw();
    } catch (err) { showError(err); } finally { more.disabled = false; }
  });
  draw();
  return [status, box, more];
}

async function renderDataVersion(main, name, version) {
  const v = await api(`/api/data/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`);
  document.title = `${v.ref} · mltrain`;
  fill(main, h("h1", {}, "Data asset ", h("span", { class: "mono" }, name), ` version ${v.version}`, v.archived ? h("span", { class: "muted" }, " (archived)") : null),
    h("div", { class: "grid" },
      section("Overview", kv([
        ["reference", h("span", { class: "mono" }, v.ref)],
        ["aliases", v.aliases.length ? aliasChips(v.aliases) : null],
        ["versions", v.versions.map((n) => [n === v.version ? h("strong", {}, n) : dataLink(name, n), " "])],
        ["type", v.type],
        ["description", v.description],
        ["tags", Object.keys(v.tags).length ? tagChips(v.tags, true) : null],
        ["source", h("span", { class: "mono", id: "data-source" }, v.source)],
        ["datastore", datastoreText(v)],
        ["size", `${fmtBytes(v.size)} in ${v.file_count} file${v.file_count === 1 ? "" : "s"}`],
        ["digest", h("span", { class: "mono" }, `sha256:${v.digest}`)],
        ["created", fmtTime(v.created_at)],
      ])),
      section("Lineage", lineageFlow(v))),
    v.lineage.read_by.length ? section("Runs that read it", readersTable(v.lineage)) : null,
    section(`Files · ${fmtBytes(v.size)}`, manifestView(name, v.version, v.manifest)));
}
