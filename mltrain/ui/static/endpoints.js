"use strict";
// Endpoints: the list, and a page per endpoint with tabs: details (model, deployed aliases, state,
// resources), Test (a request sent with a key typed into the page), Consume (curl and Python), Logs,
// Monitoring (request rate and latency over time, from the endpoint's /metrics). The key lives in one
// input of the page: it is never written to storage, a cookie or the URL, and goes only to this
// dashboard, which passes it on to the endpoint (loopback or --endpoint-host addresses only).

const MONITOR_MS = 2000;

async function renderEndpoints(main) {
  const eps = await api("/api/endpoints");
  const rows = eps.map((e) => h("tr", { dataset: { endpoint: e.name } },
    h("td", {}, h("a", { href: `/endpoints/${encodeURIComponent(e.name)}` }, e.name)),
    h("td", {}, modelLink(e.model_name, e.model_version)),
    h("td", {}, e.target), h("td", {}, statusBadge(e.state), e.reason ? h("div", { class: "muted small" }, e.reason) : null),
    h("td", { class: "mono" }, e.scoring_uri || "-"), h("td", {}, e.auth ? "key" : "off"),
    h("td", {}, `cpu ${e.cpu ?? "-"} · ${e.workers ?? "-"} worker(s)${e.memory_gb ? ` · ${e.memory_gb} GB` : ""}`)));
  fill(main, h("h1", {}, "Endpoints"),
    rows.length ? table(["endpoint", "model", "target", "state", "scoring URI", "auth", "resources"], rows, { id: "endpoints" })
      : h("p", { class: "muted" }, "No endpoints. Deploy one with `mltrain endpoints deploy NAME`."));
}

// Tabs: buttons that show one panel at a time.
function tabs(pairs) {
  const bar = h("div", { class: "tabs", role: "tablist" });
  const panels = h("div", { class: "tab-panels" });
  const select = (name) => {
    bar.querySelectorAll("button").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === name)));
    panels.querySelectorAll("[role=tabpanel]").forEach((p) => { p.hidden = p.dataset.tab !== name; });
    const pair = pairs.find(([n]) => n === name);
    if (pair && pair[2]) pair[2]();
  };
  for (const [name, panel] of pairs) {
    bar.append(h("button", { type: "button", role: "tab", dataset: { tab: name }, onclick: () => select(name) }, name));
    panels.append(h("div", { role: "tabpanel", dataset: { tab: name }, id: `tab-${name.toLowerCase()}`, hidden: true }, panel));
  }
  select(pairs[0][0]);
  return [bar, panels];
}

function snippets(e, example) {
  const body = JSON.stringify(example || { data: [[0.0]] });
  const auth = e.auth ? ` \\\n  -H "Authorization: Bearer $ENDPOINT_KEY"` : "";
  const shellQuoted = `'${body.replace(/'/g, "'\\''")}'`;
  const curl = `curl -X POST ${e.scoring_uri}${auth} \\\n  -H "Content-Type: application/json" \\\n  -d ${shellQuoted}`;
  const python = [
    "import os, json, urllib.request",
    "",
    `body = ${JSON.stringify(body)}.encode()  # the request as JSON`,
    `headers = {"Content-Type": "application/json"${e.auth ? ', "Authorization": "Bearer " + os.environ["ENDPOINT_KEY"]' : ""}}`,
    `req = urllib.request.Request(${JSON.stringify(e.scoring_uri || "")}, data=body, headers=headers)`,
    "with urllib.request.urlopen(req) as resp:",
    "    print(json.load(resp)[\"predictions\"])",
  ].join("\n");
  const block = (title, text, id) => [h("h3", {}, title), h("pre", { class: "config snippet", id }, text),
    h("button", { type: "button", class: "small", onclick: () => navigator.clipboard.writeText(text).then(() => flash("copied", "ok"), showError) }, "Copy")];
  return [h("p", { class: "muted" }, e.auth ? `Give the key in ENDPOINT_KEY (\`mltrain endpoints keys ${e.name} --regenerate primary\` makes one).` : "This endpoint needs no key."),
    block("curl", curl, "snippet-curl"), block("Python", python, "snippet-python"),
    h("p", { class: "small" }, "Its OpenAPI document: ", h("span", { class: "mono" }, e.swagger_uri || "-"))];
}

function testPanel(e, keyOf) {
  const example = e.input_schema && e.input_schema.example;
  const input = h("textarea", { id: "test-body", rows: 6, spellcheck: "false", "aria-label": "request body" }, JSON.stringify(example || { data: [[]] }, null, 2));
  const out = h("div", { id: "test-result" });
  const send = async () => {
    let body;
    try { body = JSON.parse(input.value); } catch (err) { fill(out, h("p", { class: "banner error" }, `the request is not JSON: ${err.message}`)); return; }
    try {
      const key = keyOf();
      const r = await api(`/api/endpoints/${encodeURIComponent(e.name)}/score`, {
        method: "POST", headers: { "Content-Type": "application/json", ...(key ? { "X-Endpoint-Key": key } : {}) }, body: JSON.stringify(body) });
      fill(out, h("p", {}, h("span", { class: `status ${r.status < 300 ? "status-completed" : "status-failed"}`, id: "test-status" }, `HTTP ${r.status}`), ` in ${r.took_ms.toFixed(1)} ms`),
        h("pre", { class: "config", id: "test-answer" }, typeof r.body === "string" ? r.body : JSON.stringify(r.body, null, 2)));
    } catch (err) { fill(out, h("p", { class: "banner error" }, err.hint ? `${err.message} (${err.hint})` : err.message)); }
  };
  return [
    h("p", { class: "muted small" }, e.input_schema && e.input_schema.schema ? "The example of the endpoint's input schema; edit it and send." : `Input schema unknown (${(e.input_schema || {}).note || "-"}).`),
    input, h("div", { class: "actions" }, h("button", { type: "button", id: "test-send", onclick: send }, "Send request")), out];
}

function logsPanel(e) {
  const pre = h("pre", { class: "log", id: "endpoint-log" });
  const load = async () => {
    try {
      const l = await api(`/api/endpoints/${encodeURIComponent(e.name)}/logs`);
      pre.textContent = l.text || "(the log is empty)";
      pre.scrollTop = pre.scrollHeight;
    } catch (err) { pre.textContent = err.hint ? `${err.message} (${err.hint})` : err.message; }
  };
  if (e.target !== "local") return [[h("p", { class: "muted" }, `The server runs on ${e.target}: \`mltrain endpoints logs ${e.name}\` shows its log.`)], null];
  return [[h("div", { class: "actions" }, h("button", { type: "button", class: "small", onclick: load }, "Refresh")), pre], load];
}

// Request rate and mean latency between readings of the endpoint's /metrics, drawn as they come.
function monitorPanel(e, keyOf) {
  const figures = h("div", { class: "ep-metrics", id: "ep-figures" });
  const chartsBox = h("div", { class: "charts", id: "ep-charts" });
  const rate = { label: "requests/s", step: [], ts: [], value: [] };
  const latency = { label: "mean latency (ms)", step: [], ts: [], value: [] };
  let charts = null, timer = null, last = null;
  const ms = (x) => (x === null || x === undefined ? "-" : `${(x * 1000).toFixed(1)} ms`);
  const read = async () => {
    try {
      const key = keyOf();
      const m = await api(`/api/endpoints/${encodeURIComponent(e.name)}/metrics`, { headers: key ? { "X-Endpoint-Key": key } : {} });
      if (last) {
        const dt = Math.max(m.at - last.at, 1e-3);
        const n = m.latency_count - last.latency_count;
        const pts = { step: [null], ts: [m.at], value: [(m.score_requests_total - last.score_requests_total) / dt] };
        const lat = { step: [null], ts: [m.at], value: [n > 0 ? ((m.latency_sum_s - last.latency_sum_s) / n) * 1000 : null] };
        if (!charts) {
          rate.step.push(...pts.step); rate.ts.push(...pts.ts); rate.value.push(...pts.value);
          latency.step.push(...lat.step); latency.ts.push(...lat.ts); latency.value.push(...lat.value);
          const a = h("div", { class: "chart", dataset: { key: "rate" } }), b = h("div", { class: "chart", dataset: { key: "latency" } });
          chartsBox.replaceChildren(a, b);
          charts = [new MetricChart(a, "scoring requests per second", [rate], { mode: "wall" }), new MetricChart(b, "mean latency of /score (ms)", [latency], { mode: "wall" })];
        } else {
          charts[0].append(0, pts);
          charts[1].append(0, lat);
        }
      } else chartsBox.replaceChildren(h("p", { class: "muted" }, "measuring: the charts start with the second reading"));
      last = m;
      fill(figures, kv([
        ["scoring requests", fmtValue(m.score_requests_total)], ["errors", fmtValue(m.errors_total)], ["predictions", fmtValue(m.predictions_total)],
        ["latency mean", ms(m.latency_mean_s)], ["p50 ≤", ms(m.latency_p50_s)], ["p99 ≤", ms(m.latency_p99_s)],
      ]));
    } catch (err) {
      stop();
      fill(figures, h("p", { class: "banner error" }, err.hint ? `${err.message} (${err.hint})` : err.message));
    }
  };
  const button = h("button", { type: "button", id: "monitor", onclick: () => (timer ? stop() : start()) }, "Start");
  function start() { button.textContent = "Stop"; read(); timer = setInterval(read, MONITOR_MS); }
  function stop() { clearInterval(timer); timer = null; button.textContent = "Start"; }
  return [h("p", { class: "muted small" }, `Read from the endpoint's /metrics every ${MONITOR_MS / 1000} s while this page is open.`),
    h("div", { class: "actions" }, button), figures, chartsBox];
}

async function renderEndpoint(main, name) {
  const e = await api(`/api/endpoints/${encodeURIComponent(name)}`);
  document.title = `${e.name} · mltrain`;
  // the key: only in this input (no form, so nothing is submitted, saved or put in the URL)
  const keyIn = h("input", { type: "password", id: "endpoint-key", autocomplete: "off", placeholder: e.auth ? "endpoint key" : "no key needed", "aria-label": `key of ${e.name}`, size: 24 });
  const keyOf = () => keyIn.value;
  const [logs, loadLogs] = logsPanel(e);
  const details = kv([
    ["model", [modelLink(e.model_name, e.model_version), " ", e.aliases.map((a) => h("span", { class: "tag" }, `@${a}`))]],
    ["state", [statusBadge(e.state), e.reason ? ` ${e.reason}` : ""]],
    ["target", e.target],
    ["scoring URI", h("span", { class: "mono" }, e.scoring_uri || "-")],
    ["auth", e.auth ? "key (Authorization: Bearer KEY)" : "off"],
    ["resources", `cpu ${e.cpu ?? "-"} · ${e.workers ?? "-"} worker(s)${e.memory_gb ? ` · ${e.memory_gb} GB` : " · no memory limit"}`],
    ["created", fmtTime(e.created_at)], ["updated", fmtTime(e.updated_at)],
    ["error", e.error ? h("pre", { class: "error-text" }, e.error) : null],
  ]);
  fill(main, h("h1", {}, "Endpoint ", h("span", { class: "mono" }, e.name), " ", statusBadge(e.state)),
    e.reachable ? null : h("p", { class: "banner warn" }, e.unreachable_reason),
    h("div", { class: "filters" }, h("label", {}, "key ", keyIn), h("span", { class: "muted small" }, "kept in this page only: never stored")),
    h("section", { class: "card" }, tabs([
      ["Details", details],
      ["Test", testPanel(e, keyOf)],
      ["Consume", snippets(e, e.input_schema && e.input_schema.example)],
      ["Logs", logs, loadLogs],
      ["Monitoring", monitorPanel(e, keyOf)],
    ])));
}
