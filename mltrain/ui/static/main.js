"use strict";
// The router: every page is index.html; the path picks what to draw.

async function renderMode() {
  const info = await dashboardInfo();
  const box = $("#mode");
  if (!info.allow_write) {
    box.replaceChildren(h("span", { class: "muted", title: "start with mltrain ui --allow-write to act" }, "read-only"));
    return;
  }
  const input = h("input", { type: "password", id: "token", placeholder: "token for actions", value: getToken(), autocomplete: "off", size: 18, "aria-label": "the dashboard's token" });
  const keep = () => { sessionStorage.setItem(TOKEN_KEY, input.value); input.classList.remove("attention"); };
  input.addEventListener("change", keep);
  const form = h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); keep(); } }, input);
  box.replaceChildren(form);
}

async function route() {
  const main = $("#main");
  const path = location.pathname;
  const parts = path.split("/").slice(1).map(decodeURIComponent);
  const nav = path === "/" || parts[0] === "runs" || parts[0] === "compare" ? "runs" : parts[0];
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
  if (path === "/") return renderRuns(main);
  if (parts[0] === "runs" && parts.length === 2) return renderRun(main, parts[1]);
  if (path === "/compare") return renderCompare(main);
  if (path === "/models") return renderModels(main);
  if (parts[0] === "models" && parts.length === 2) return renderModel(main, parts[1]);
  if (parts[0] === "models" && parts.length === 3) return renderVersion(main, parts[1], parts[2]);
  if (path === "/endpoints") return renderEndpoints(main);
  if (parts[0] === "endpoints" && parts.length === 2) return renderEndpoint(main, parts[1]);
  if (path === "/environments") return renderEnvironments(main);
  if (path === "/data") return renderDataList(main);
  if (parts[0] === "data" && parts.length === 2) return renderDataAsset(main, parts[1]);
  if (parts[0] === "data" && parts.length === 3) return renderDataVersion(main, parts[1], parts[2]);
  fill(main, h("h1", {}, "Not found"), h("p", { class: "banner error", id: "not-found" }, `no page ${path}`));
}

renderMode().catch(showError);
route().catch((err) => {
  if (err.status === 404) { notFound($("#main"), err); return; }
  showError(err);
  $("#main").replaceChildren(h("p", { class: "muted" }, "This page could not be loaded."));
}).finally(() => {
  // drawn (after one more frame for what resizes to the page): body[data-ready] for scripts and tests
  requestAnimationFrame(() => { document.body.dataset.ready = "1"; });
});
