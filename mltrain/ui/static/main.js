"use strict";
// The router: every page is index.html; the path picks what to draw.

async function renderMode() {
  const info = await api("/api/info");
  const box = $("#mode");
  if (!info.allow_write) {
    box.replaceChildren(h("span", { class: "muted", title: "start with mltrain ui --allow-write to act" }, "read-only"));
    return;
  }
  const input = h("input", { type: "password", id: "token", placeholder: "token for actions", value: getToken(), autocomplete: "off", size: 18 });
  input.addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, input.value));
  const form = h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); sessionStorage.setItem(TOKEN_KEY, input.value); } }, input);
  box.replaceChildren(form);
}

async function route() {
  const main = $("#main");
  const path = decodeURIComponent(location.pathname);
  let m;
  const nav = path === "/" || path.startsWith("/runs") || path.startsWith("/compare") ? "runs" : path.split("/")[1];
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
  if (path === "/") return renderRuns(main);
  if ((m = path.match(/^\/runs\/([^/]+)$/))) return renderRun(main, m[1]);
  if (path === "/compare") return renderCompare(main);
  if (path === "/models") return renderModels(main);
  if ((m = path.match(/^\/models\/([^/]+)$/))) return renderModel(main, m[1]);
  if (path === "/endpoints") return renderEndpoints(main);
  if (path === "/environments") return renderEnvironments(main);
  fill(main, h("h1", {}, "Not found"));
}

renderMode().catch(showError);
route().catch((err) => {
  showError(err);
  $("#main").replaceChildren(h("p", { class: "muted" }, "This page could not be loaded."));
});
