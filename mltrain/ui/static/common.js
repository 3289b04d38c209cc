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

async function api(path, opts = {}) {
  return parseResponse(await fetch(path, opts));
}

async function parseResponse(resp) {
  const type = resp.headers.get("content-type") || "";
  const body = type.includes("application/json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const msg = body && body.error ? body.error : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, msg, body && body.hint);
  }
  return body;
}

// The dashboard's own token (for write actions): kept for this browser tab only.
const TOKEN_KEY = "mltrain-ui-token";
const getToken = () => sessionStorage.getItem(TOKEN_KEY) || "";

async function apiWrite(path, body) {
  const headers = { "Content-Type": "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  return api(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
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

const pad = (n) => String(n).padStart(2, "0");
function fmtTime(ts) {
  if (!ts) return "-";
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function fmtDuration(start, end) {
  if (!start) return "-";
  const s = (end || Date.now() / 1000) - start;
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
const short = (s, n = 12) => (s ? String(s).slice(0, n) : "-");

function statusBadge(status) {
  return h("span", { class: `status status-${String(status).toLowerCase()}` }, status);
}

function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === "" ? "-" : v)]));
}

function section(title, ...content) {
  return h("section", { class: "card" }, h("h2", {}, title), content);
}

function runLink(id) {
  return h("a", { href: `/runs/${encodeURIComponent(id)}`, class: "mono" }, id);
}

// Replace the children of ``el`` (null/false children are skipped).
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

const query = () => new URLSearchParams(location.search);
