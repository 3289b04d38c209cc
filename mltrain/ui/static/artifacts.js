"use strict";
// A run's artifacts as a file tree: download, a preview in a scroll box for text, Markdown, JSON,
// YAML and CSV files (one at a time: a second click closes it), images as thumbnails that open full size.

const IMAGE_RE = /\.(png|jpe?g|gif|webp)$/i;
const PREVIEW_RE = /\.(txt|log|csv|tsv|json|jsonl|md|ya?ml|py|toml|cfg)$/i;

function artifactUrl(runId, path) {
  return `/api/runs/${encodeURIComponent(runId)}/artifacts/${path.split("/").map(encodeURIComponent).join("/")}`;
}

// {dirs: {name: node}, files: [file]} from the files' paths (``dirs`` without a prototype: a stored
// folder named __proto__ or constructor is a folder like any other).
function fileTree(files) {
  const branch = () => ({ dirs: Object.create(null), files: [] });
  const root = branch();
  for (const a of files) {
    const parts = a.path.split("/");
    let node = root;
    for (const dir of parts.slice(0, -1)) node = node.dirs[dir] = node.dirs[dir] || branch();
    node.files.push({ ...a, name: parts[parts.length - 1] });
  }
  return root;
}

// A file tree (``fileTree``) as nested lists: folders open, each with its size; ``fileRow(file)`` draws a file.
function treeView(node, fileRow) {
  return h("ul", { class: "tree" },
    Object.keys(node.dirs).sort().map((d) => h("li", { class: "dir" },
      h("details", { open: true }, h("summary", {}, h("span", { class: "mono" }, `${d}/`), " ", h("span", { class: "muted small" }, fmtBytes(treeSize(node.dirs[d])))),
        treeView(node.dirs[d], fileRow)))),
    node.files.sort((a, b) => a.name.localeCompare(b.name)).map(fileRow));
}

const treeSize = (node) => node.files.reduce((n, f) => n + f.size, 0) + Object.values(node.dirs).reduce((n, d) => n + treeSize(d), 0);

// A safe view of Markdown: headings, lists, code blocks and paragraphs as elements holding text.
function markdownView(text) {
  const out = h("div", { class: "markdown" });
  let code = null, list = null, para = [];
  const flush = () => { if (para.length) out.append(h("p", {}, para.join(" "))); para = []; };
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) {
      flush(); list = null;
      if (code) { out.append(h("pre", {}, code.join("\n"))); code = null; } else code = [];
      continue;
    }
    if (code) { code.push(line); continue; }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    const item = line.match(/^\s*(?:[-*+]|\d+\.)\s+(.*)$/);
    if (heading) { flush(); list = null; out.append(h(`h${Math.min(6, heading[1].length + 2)}`, {}, heading[2])); }
    else if (item) { flush(); if (!list) { list = h("ul"); out.append(list); } list.append(h("li", {}, item[1])); }
    else if (!line.trim()) { flush(); list = null; }
    else { list = null; para.push(line.trim()); }
  }
  if (code) out.append(h("pre", {}, code.join("\n")));
  flush();
  return out;
}

function previewBody(p) {
  if (p.kind === "table") {
    return [table(p.columns, p.rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
      p.truncated ? h("p", { class: "muted small" }, "first rows only") : null];
  }
  let body = h("pre", { class: "preview-text" }, p.text);
  if (p.format === "markdown") body = markdownView(p.text);
  else if (p.format === "json" && !p.truncated) {
    try { body = h("pre", { class: "preview-text" }, JSON.stringify(JSON.parse(p.text), null, 2)); } catch (_) { /* shown as it is */ }
  }
  return [body, p.truncated ? h("p", { class: "muted small" }, "the start of the file only: download it for the rest") : null];
}

// The image viewer: the image at its full size, scrolling inside the window.
function openImage(url, path) {
  let dialog = $("#lightbox");
  if (!dialog) {
    dialog = h("dialog", { id: "lightbox", "aria-label": "image" });
    dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
    document.body.append(dialog);
  }
  fill(dialog,
    h("div", { class: "lightbox-bar" }, h("span", { class: "mono" }, path), h("a", { href: url, target: "_blank", rel: "noopener" }, "open original"),
      h("button", { type: "button", onclick: () => dialog.close() }, "Close")),
    h("div", { class: "lightbox-body" }, h("img", { src: url, alt: path, class: "full-image" })));
  dialog.showModal();
}

function artifactView(runId, artifacts, terminal) {
  if (!artifacts.length) return h("p", { class: "muted" }, terminal ? "none" : "none yet (outputs/ and logs/ are stored when the run ends)");
  const viewer = h("div", { class: "preview", id: "artifact-preview", hidden: true });
  let open = null;
  const toggle = async (a, button) => {
    if (open === a.path) { viewer.hidden = true; viewer.replaceChildren(); open = null; button.textContent = "preview"; return; }
    document.querySelectorAll(".tree button.preview-btn").forEach((b) => { b.textContent = "preview"; });
    open = a.path;
    button.textContent = "close preview";
    try {
      const p = await api(`/api/runs/${encodeURIComponent(runId)}/preview?path=${encodeURIComponent(a.path)}`);
      if (open !== a.path) return;
      fill(viewer, h("h3", {}, a.path), h("div", { class: "preview-box" }, previewBody(p)));
      viewer.hidden = false;
    } catch (err) { showError(err); }
  };
  const fileRow = (a) => h("li", { class: "file", dataset: { path: a.path } },
    h("span", { class: "mono" }, a.name), " ", h("span", { class: "muted small" }, fmtBytes(a.size)), " ",
    IMAGE_RE.test(a.path) ? h("button", { type: "button", class: "link", onclick: () => openImage(artifactUrl(runId, a.path), a.path) }, "view") : null,
    PREVIEW_RE.test(a.path) ? h("button", { type: "button", class: "link preview-btn", onclick: (e) => toggle(a, e.target) }, "preview") : null,
    " ", h("a", { href: `${artifactUrl(runId, a.path)}?download=1`, download: a.name }, "download"));
  const images = artifacts.filter((a) => IMAGE_RE.test(a.path)).map((a) =>
    h("figure", {}, h("button", { type: "button", class: "thumb", title: "open full size", onclick: () => openImage(artifactUrl(runId, a.path), a.path) },
      h("img", { src: artifactUrl(runId, a.path), alt: a.path, loading: "lazy", class: "artifact-image" })), h("figcaption", {}, a.path)));
  return [treeView(fileTree(artifacts), fileRow), viewer, images.length ? h("div", { class: "images" }, images) : null];
}
