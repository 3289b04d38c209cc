"use strict";
// Helpers shared by every page: DOM building (text only, never HTML strings), the API, formatting.

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, message, hint) {
    super(message);
    this.status = status;
    this.hint = hint;
  }
}

// Pages ask for "not found" as a 200 marked not_found: a browser logs every 4xx answer in its console.
const SOFT_404 = { "X-Soft-Not-Found": "1" };

async function api(path, opts = {}) {
  return parseResponse(await fetch(path, { ...opts, headers: { ...SOFT_404, ...(opts.headers || {}) } }));
}

async function parseResponse(resp) {
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("application/json") ? await resp.json() : await resp.text();
  if (body && body.not_found) throw new ApiError(404, body.error, body.hint);
  if (!resp.ok) {
    const msg = body && body.error ? body.error : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, msg, body && body.hint);
  }
  return body;
}

// What the dashboard allows (read-only or not), asked once per page.
let infoPromise = null;
const dashboardInfo = () => (infoPromise = infoPromise || api("/api/info"));
const canWrite = async () => (await dashboardInfo()).allow_write;

// The dashboard's own token (for write actions): kept for this browser tab only.
const TOKEN_KEY = "mltrain-ui-token";
const getToken = () => sessionStorage.getItem(TOKEN_KEY) || "";

async function apiWrite(path, body, method = "POST") {
  const headers = { "Content-Type": "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    return await api(path, { method, headers, body: JSON.stringify(body || {}) });
  } catch (err) {
    if (err.status !== 401) throw err;
    const box = $("#token");
    if (box) { box.classList.add("attention"); box.focus(); }
    throw new ApiError(401, token ? "the dashboard refused this token" : "this action needs the dashboard's token",
      "type the token mltrain ui printed into the token box at the top right, then try again");
  }
}

function flash(message, kind = "error") {
  const box = $("#flash");
  box.className = kind;
  box.textContent = message;
  box.hidden = false;
  if (kind !== "error") setTimeout(() => { box.hidden = true; }, 4000);
}

function showError(err) {
  flash(err.hint ? `${err.message} (${err.hint})` : err.message || String(err));
}

// A page whose run, model or endpoint does not exist: its banner instead of the page.
function notFound(main, err) {
  document.title = "Not found · mltrain";
  fill(main, h("h1", {}, "Not found"),
    h("p", { class: "banner error", id: "not-found", role: "alert" }, err.message, err.hint ? ` (${err.hint})` : ""),
    h("p", {}, h("a", { href: "/" }, "All runs")));
}

const pad = (n) => String(n).padStart(2, "0");
function fmtTime(ts) {
  if (!ts) return "-";
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function fmtDuration(start, end) {
  if (!start) return "-";
  const s = Math.max(0, (end || Date.now() / 1000) - start);
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${pad(Math.floor(s % 60))}s` : `${Math.floor(m / 60)}h${pad(m % 60)}m`;
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}
function fmtValue(v) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") {
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(5));
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}
// A value in full (hover values, single values): every digit stored.
const fmtFull = (v) => (v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v));
const short = (s, n = 12) => (s ? String(s).slice(0, n) : "-");

// Colours of runs side by side (a run keeps its colour in every view of a page).
const COLORS = ["#2b6cb0", "#dd6b20", "#38a169", "#e53e3e", "#805ad5", "#d69e2e", "#319795", "#b83280", "#4a5568", "#3182ce"];
const colorOf = (i) => COLORS[i % COLORS.length];

function statusBadge(status) {
  return h("span", { class: `status status-${String(status).toLowerCase()}` }, status);
}

// A table in a box that scrolls: the page never grows wider than the window.
function table(headers, rows, attrs = {}) {
  return h("div", { class: "scroll" }, h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows)));
}

// A definition list of [name, value] pairs (a pair or a value that is undefined is left out).
function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter((p) => p && p[1] !== undefined).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === "" ? "-" : v)]));
}

function section(title, ...content) {
  return h("section", { class: "card" }, h("h2", {}, title), content);
}

function runLink(id) {
  return h("a", { href: `/runs/${encodeURIComponent(id)}`, class: "mono id" }, id);
}

function modelLink(name, version) {
  const path = `/models/${encodeURIComponent(name)}${version ? `/${version}` : ""}`;
  return h("a", { href: path }, version ? `${name}:${version}` : name);
}

function dataLink(name, version) {
  const path = `/data/${encodeURIComponent(name)}${version ? `/${version}` : ""}`;
  return h("a", { href: path }, version ? `${name}:${version}` : name);
}

// Tags as chips; mltrain's own (``mltrain.*``) only when asked for.
const isInternalTag = (k) => k.startsWith("mltrain.");
function tagChips(tags, internal = false) {
  const entries = Object.entries(tags || {});
  const shown = entries.filter(([k]) => internal || !isInternalTag(k));
  const hidden = entries.length - shown.length;
  return [shown.map(([k, v]) => h("span", { class: "tag" }, v ? `${k}=${v}` : k)),
    hidden ? h("span", { class: "muted small", title: "mltrain's own tags (sweep bookkeeping): shown with ‘internal tags’" }, `+${hidden} internal`) : null];
}

// Replace the children of ``el`` (null/false children are skipped).
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

const query = () => new URLSearchParams(location.search);
