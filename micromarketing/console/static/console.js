// The micromarketing console: polls the console's JSON API and draws every panel with plain
// DOM and inline SVG (no libraries, no requests beyond this server).
"use strict";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
  "#65a30d", "#ea580c", "#4f46e5", "#0d9488", "#9333ea", "#ca8a04", "#475569"];
const SVG = "http://www.w3.org/2000/svg";
const filled = new Set();
let rulesVersion = null;
let yamlTouched = false;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function fill(id, ...content) {
  const box = document.getElementById(id);
  box.replaceChildren(...content);
  filled.add(id);
  if (["segments-body", "rates-body", "feed-body", "campaigns-body", "rules-body"]
    .every((k) => filled.has(k))) document.body.dataset.ready = "1";
}

function empty(text) { return el("p", { class: "empty" }, text); }

function fmt(x, digits = 3) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en");
  return x.toFixed(digits);
}

function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }

function table(headers, rows, numeric = []) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h, i) =>
      el("th", { class: numeric.includes(i) ? "num" : "" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) =>
      el("td", { class: numeric.includes(i) ? "num" : "" }, c))))));
}

// a line chart of several series sharing one time grid: {start, width, series: {name: [v]}}
function lineChart(grid, w, h, names) {
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", class: "chart" });
  root.style.maxWidth = `${w}px`;
  const all = names.flatMap((n) => grid.series[n] || []);
  if (!all.length) return root;
  const len = Math.max(...names.map((n) => (grid.series[n] || []).length));
  const max = Math.max(1, ...all), min = Math.min(0, ...all);
  const x = (i) => 4 + (len <= 1 ? 0 : (i * (w - 8)) / (len - 1));
  const y = (v) => h - 14 - ((v - min) * (h - 20)) / (max - min || 1);
  root.append(svg("line", { x1: 0, x2: w, y1: y(0), y2: y(0), stroke: "#e5e7eb" }));
  names.forEach((n, k) => {
    const vals = grid.series[n] || [];
    const pts = vals.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    root.append(svg("polyline", { points: pts, fill: "none", "stroke-width": 1.6,
      stroke: COLORS[k % COLORS.length] }));
  });
  const start = grid.start ? new Date(grid.start) : null;
  if (start) {
    const end = new Date(start.getTime() + grid.width * 1000 * len);
    const label = (d, anchor, xx) => {
      const t = svg("text", { x: xx, y: h - 2, "font-size": 10, fill: "#6b7280",
        "text-anchor": anchor });
      t.textContent = d.toISOString().slice(0, 16).replace("T", " ");
      root.append(t);
    };
    label(start, "start", 2);
    label(end, "end", w - 2);
  }
  const top = svg("text", { x: 2, y: 10, "font-size": 10, fill: "#6b7280" });
  top.textContent = fmt(max);
  root.append(top);
  return root;
}

function spark(values, color) {
  const grid = { start: null, width: 1, series: { v: values } };
  const root = lineChart(grid, 160, 26, ["v"]);
  const line = root.querySelector("polyline");
  if (line) line.setAttribute("stroke", color);
  return root;
}

function legend(names) {
  return el("div", { class: "legend" }, names.map((n, k) => el("span", {},
    el("span", { class: `swatch c${k % COLORS.length}` }), n)));
}

function colorSwatches(root) {  // CSP allows no inline style attributes: colour via CSSOM
  root.querySelectorAll(".swatch").forEach((s) => {
    const k = Number(/c(\d+)/.exec(s.className)[1]);
    s.style.background = COLORS[k];
  });
}

async function api(path, options) {
  let resp;
  try { resp = await fetch(path, options); } catch (e) {
    return { status: 0, body: { code: "unreachable", message: "the console does not answer" } };
  }
  let body = null;
  try { body = await resp.json(); } catch (e) { body = { code: "bad_response",
    message: `${resp.status} without JSON` }; }
  return { status: resp.status, body };
}

function authHeaders() {
  const token = document.getElementById("token").value.trim();
  sessionStorage.setItem("mm-console-token", token);
  return { "Content-Type": "application/json", Authorization: `Bearer ${token}` };
}

// ---------------------------------------------------------------- overview
function renderSegments(o) {
  const names = Object.keys(o.segments);
  if (!names.length) { fill("segments-body", empty("no segment changes read yet")); return; }
  const hist = o.segment_history;
  const rows = names.map((n, k) => [
    el("span", {}, el("span", { class: `swatch c${k % COLORS.length}` }), n),
    fmt(o.segments[n]),
    spark(hist.series[n] || [], COLORS[k % COLORS.length]),
  ]);
  const box = el("div", {}, lineChart(hist, 560, 150, names), legend(names),
    table(["segment", "members", "history"], rows, [1]));
  box.querySelectorAll("tr td:nth-child(2)").forEach((td, i) => {
    td.dataset.segment = names[i];
  });
  colorSwatches(box);
  fill("segments-body", box);
}

function renderRates(o) {
  const campaigns = [...new Set([...Object.keys(o.triggers), ...Object.keys(o.triggers_holdout)])]
    .sort();
  const rpm = o.rates_per_minute;
  const head = el("div", { class: "kv" },
    el("span", {}, "triggers / min (last 60 s)"), el("span", { id: "rate-triggers" },
      fmt(rpm.triggers || 0, 1)),
    el("span", {}, "suppressions / min"), el("span", {}, fmt(rpm.suppressed || 0, 1)),
    el("span", {}, "conversions"), el("span", {}, fmt(o.conversions)),
    el("span", {}, "revenue converted"), el("span", {}, fmt(o.revenue, 2)));
  const parts = [head];
  if (campaigns.length) {
    parts.push(el("h3", {}, "Triggers per campaign (event time)"),
      lineChart(o.trigger_history, 560, 110, campaigns), legend(campaigns),
      table(["campaign", "sent", "held out"], campaigns.map((c) => [
        c, fmt(o.triggers[c] || 0), fmt(o.triggers_holdout[c] || 0)]), [1, 2]));
  } else parts.push(empty("no triggers read yet"));
  const reasons = Object.keys(o.suppressions);
  if (reasons.length) {
    parts.push(el("h3", {}, "Suppressions by reason"),
      lineChart(o.suppression_history, 560, 80, reasons), legend(reasons),
      table(["reason", "count"], reasons.map((r) => [r, fmt(o.suppressions[r])]), [1]));
  } else parts.push(empty("no suppressions read yet"));
  const box = el("div", {}, parts);
  colorSwatches(box);
  fill("rates-body", box);
}

function renderFeed(o) {
  if (!o.feed.length) { fill("feed-body", empty("no triggers read yet")); return; }
  const rows = o.feed.map((t) => [
    (t.fired_at || "").replace("T", " ").slice(0, 19),
    t.campaign,
    el("span", { class: t.holdout ? "tag holdout" : "tag" }, t.holdout ? "holdout" : t.offer),
    el("span", { class: "clickable", onclick: () => lookup(t.consumer_id) }, t.consumer_id),
  ]);
  fill("feed-body", el("div", { class: "scroll" },
    table(["fired at (UTC)", "campaign", "offer", "consumer"], rows)));
}

function renderHeader(o) {
  const s = document.getElementById("status");
  const ok = o.sources.broker_connected;
  s.textContent = ok ? `broker ${o.sources.broker}` : `broker ${o.sources.broker}: not connected`;
  s.className = ok ? "badge ok" : "badge bad";
  const b = document.getElementById("rules-badge");
  b.textContent = o.rules ? `rules ${o.rules.version}` : "rules: unknown";
  const total = Object.values(o.records).reduce((a, v) => a + v, 0);
  document.getElementById("counts").textContent = `${fmt(total)} output records read`;
  const seen = Object.keys(o.versions_seen);
  document.getElementById("versions").textContent = seen.length
    ? `versions in the outputs read: ${seen.join(", ")}` : "";
  if (o.rules && o.rules.version !== rulesVersion) loadRules();
}

async function pollOverview() {
  try {
    const { status, body } = await api("/v1/overview");
    if (status !== 200) throw new Error(body.message);
    renderHeader(body);
    renderSegments(body);
    renderRates(body);
    renderFeed(body);
  } catch (e) {
    const s = document.getElementById("status");
    s.textContent = "console not reachable";
    s.className = "badge bad";
  }
}

// ---------------------------------------------------------------- campaigns
function ciBar(lift, ci, scale) {
  const w = 170, h = 18, mid = w / 2;
  const root = svg("svg", { width: w, height: h });
  root.append(svg("line", { x1: mid, x2: mid, y1: 0, y2: h, stroke: "#9ca3af" }));
  if (ci) {
    const x = (v) => Math.max(1, Math.min(w - 1, mid + (v / scale) * (mid - 4)));
    const color = ci[0] > 0 ? "#15803d" : ci[1] < 0 ? "#b91c1c" : "#6b7280";
    root.append(svg("line", { x1: x(ci[0]), x2: x(ci[1]), y1: h / 2, y2: h / 2, stroke: color,
      "stroke-width": 3 }));
    if (lift !== null) root.append(svg("circle", { cx: x(lift), cy: h / 2, r: 3.5, fill: color }));
  }
  return root;
}

function campaignRows(name, r, scale, indent) {
  const lift = r.lift;
  return [
    indent ? `↳ ${name}` : name, fmt(r.treated), fmt(r.holdout),
    pct(r.conversion_rate_treated), pct(r.conversion_rate_holdout),
    el("span", { class: lift > 0 ? "up" : lift < 0 ? "down" : "" },
      lift === null || lift === undefined ? "–" : `${(100 * lift).toFixed(2)} pt`),
    r.lift_ci95 ? `[${(100 * r.lift_ci95[0]).toFixed(2)}, ${(100 * r.lift_ci95[1]).toFixed(2)}]`
      : "–",
    ciBar(lift ?? null, r.lift_ci95, scale),
    fmt(r.p_value), fmt(r.incremental_revenue, 2),
  ];
}

async function pollCampaigns() {
  try {
    const closed = document.getElementById("closed-only").checked;
    const { status, body } = await api(closed ? "/v1/campaigns?closed=1" : "/v1/campaigns");
    if (status !== 200) throw new Error(body.message);
    if (!body.available) {
      fill("campaigns-body", empty("campaign results are not available in this installation"));
      return;
    }
    const names = Object.keys(body.campaigns).sort();
    if (!names.length) {
      fill("campaigns-body", empty(body.closed
        ? `no trigger's attribution window has closed by ${body.until || "the stream's time"}`
        : "no triggers read yet"));
      return;
    }
    const bounds = names.flatMap((n) => body.campaigns[n].lift_ci95 || []).map(Math.abs);
    const scale = Math.max(0.01, ...bounds);
    const rows = [];
    for (const n of names) {
      const c = body.campaigns[n];
      rows.push(campaignRows(n, c, scale, false));
      for (const [offer, r] of Object.entries(c.offers || {})) {
        rows.push(campaignRows(offer, r, scale, true));
      }
    }
    fill("campaigns-body", el("div", {}, table(
      ["campaign / offer", "treated", "holdout", "conv. treated", "conv. holdout (anyway)",
        "lift", "95% CI (pt)", `CI, ±${(100 * scale).toFixed(1)} pt`, "p", "incr. revenue"],
      rows, [1, 2, 3, 4, 5, 8, 9]),
    el("p", { class: "muted" }, (body.closed ? `triggers whose window closed by ${body.until}`
      : `every trigger read, windows still open included (stream time ${body.until})`) +
      "; “conv. holdout” is the share that would have bought anyway")));
  } catch (e) {
    fill("campaigns-body", empty(`campaign results unavailable: ${e.message}`));
  }
}

// ---------------------------------------------------------------- rules
async function loadRules() {
  const { status, body } = await api("/v1/rules");
  const area = document.getElementById("dryrun-yaml");
  if (status !== 200 || !body.known) {
    rulesVersion = null;
    fill("rules-body", empty(body.message || "no rules known"));
    return;
  }
  rulesVersion = body.version;
  fill("rules-body", el("div", {},
    el("div", { class: "kv" }, el("span", {}, "version"), el("span", { id: "rules-version" },
      body.version), el("span", {}, "from"), el("span", {}, body.source)),
    el("details", {}, el("summary", {}, "the rules file"), el("pre", {}, body.yaml || ""))));
  if (!yamlTouched) area.value = body.yaml || "";
}

// ---------------------------------------------------------------- look-up
function lookup(id) {
  document.getElementById("lookup-id").value = id;
  document.getElementById("lookup").scrollIntoView({ behavior: "smooth" });
  runLookup();
}

function kv(obj) {
  const keys = Object.keys(obj || {}).sort();
  if (!keys.length) return empty("none");
  return el("div", { class: "kv" }, keys.flatMap((k) => {
    const v = obj[k];
    const text = v !== null && typeof v === "object" ? JSON.stringify(v) : fmt(v);
    return [el("span", {}, k), el("span", { "data-feature": k }, text)];
  }));
}

async function runLookup() {
  const id = document.getElementById("lookup-id").value.trim();
  if (!id) return;
  fill("lookup-body", empty(`looking up ${id}…`));
  const { status, body } = await api(`/v1/profiles/${encodeURIComponent(id)}`);
  if (status !== 200) {
    fill("lookup-body", empty(`${body.code || status}: ${body.message || ""}`));
    return;
  }
  const segs = Object.entries(body.segments || {});
  const timers = body.timers || [];
  const outputs = body.recent_outputs || [];
  fill("lookup-body", el("div", { id: "profile" },
    el("p", {}, el("b", {}, body.consumer_id), ` — partition ${body.partition}`),
    el("h3", {}, "Segments"),
    segs.length ? el("div", {}, segs.map(([n, s]) => el("span", { class: "tag" },
      `${n} since ${(s.since || "").replace("T", " ").slice(0, 19)}`))) : empty("none"),
    el("h3", {}, "Pending timers"),
    timers.length ? table(["kind", "name", "due (UTC)"], timers.map((t) => [t.kind, t.name,
      (t.due || "").replace("T", " ").slice(0, 19)])) : empty("none"),
    el("h3", {}, "Features"), kv(body.features),
    el("h3", {}, "Traits"), kv(body.traits),
    el("h3", {}, `Recent outputs (${outputs.length})`),
    outputs.length ? el("pre", {}, outputs.map((r) => JSON.stringify(r)).join("\n")) : empty("none")));
}

// ---------------------------------------------------------------- dry run, publish
function diffTable(title, rows) {
  if (!rows.length) return el("div", {}, el("h3", {}, title), empty("none on either side"));
  return el("div", {}, el("h3", {}, title), table(["name", "in force", "edited", "change"],
    rows.map((r) => [r.name, fmt(r.current), fmt(r.proposed), el("span",
      { class: r.delta > 0 ? "up" : r.delta < 0 ? "down" : "" },
      r.delta > 0 ? `+${r.delta}` : String(r.delta))]), [1, 2, 3]));
}

function showErrors(body) {
  const list = document.getElementById("dryrun-errors");
  list.replaceChildren(...(body.errors || []).map((line) => el("li", {}, line)));
}

async function post(path, button, label) {
  const status = document.getElementById("dryrun-status");
  const payload = { yaml: document.getElementById("dryrun-yaml").value };
  if (path === "/v1/dry-run") payload.hours = Number(document.getElementById("dryrun-hours").value);
  button.disabled = true;
  status.textContent = `${label}…`;
  if (path === "/v1/dry-run") document.getElementById("dryrun-body").replaceChildren();
  showErrors({});
  try {
    const res = await api(path, { method: "POST", headers: authHeaders(),
      body: JSON.stringify(payload) });
    status.textContent = res.status === 200 ? "" : `${res.body.code}: ${res.body.message}`;
    showErrors(res.body);
    return res;
  } finally {
    button.disabled = false;
  }
}

async function dryRun() {
  const res = await post("/v1/dry-run", document.getElementById("dryrun-run"), "replaying");
  if (res.status !== 200) return;
  const d = res.body;
  const c = d.consumers;
  fill("dryrun-body", el("div", { id: "dryrun-result" },
    el("p", {}, `${fmt(d.records)} input records from ${d.since} to ${d.until}` +
      (d.truncated ? " (cut at the limit)" : "") + `: rules ${d.current_version} (in force) ` +
      `vs ${d.proposed_version} (edited) — ` +
      (d.changed ? "the outputs differ" : "no difference")),
    el("div", { class: "diffgrid" }, diffTable("Segment sizes at the end", d.segments),
      diffTable("Triggers per campaign", d.campaigns),
      diffTable("Suppressions per reason", d.suppressed)),
    el("h3", {}, "Consumers targeted"),
    el("div", { class: "kv" },
      el("span", {}, "by both"), el("span", {}, fmt(c.both)),
      el("span", {}, "only by the rules in force"), el("span", {}, fmt(c.only_current)),
      el("span", {}, "only by the edited rules"), el("span", {}, fmt(c.only_proposed))),
    c.sample_only_current.length ? el("p", {}, "only in force: ", c.sample_only_current.map((i) =>
      el("span", { class: "tag clickable", onclick: () => lookup(i) }, i))) : null,
    c.sample_only_proposed.length ? el("p", {}, "only edited: ", c.sample_only_proposed.map((i) =>
      el("span", { class: "tag clickable", onclick: () => lookup(i) }, i))) : null));
}

async function publish() {
  const res = await post("/v1/rules", document.getElementById("dryrun-publish"), "publishing");
  if (res.status === 200) {
    document.getElementById("dryrun-status").textContent =
      `published rules ${res.body.version} on the control topic`;
    yamlTouched = false;
  }
}

// ---------------------------------------------------------------- start
function start() {
  const token = document.getElementById("token");
  const fromHash = /token=([^&]+)/.exec(location.hash);
  token.value = fromHash ? decodeURIComponent(fromHash[1])
    : sessionStorage.getItem("mm-console-token") || "";
  document.getElementById("dryrun-yaml").addEventListener("input", () => { yamlTouched = true; });
  document.getElementById("dryrun-run").addEventListener("click", dryRun);
  document.getElementById("dryrun-publish").addEventListener("click", publish);
  document.getElementById("closed-only").addEventListener("change", pollCampaigns);
  document.getElementById("lookup-form").addEventListener("submit", (e) => {
    e.preventDefault();
    runLookup();
  });
  loadRules();
  const loop = (fn, ms) => { fn().finally(() => setTimeout(() => loop(fn, ms), ms)); };
  loop(pollOverview, 1000);
  loop(pollCampaigns, 3000);
}

document.addEventListener("DOMContentLoaded", start);
