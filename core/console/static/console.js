// Plato ops console: reads /api/v1/{fleet,apps,pipelines,faults} with the ops key every few
// seconds and draws them. Plain DOM, no framework, nothing loaded from elsewhere.
"use strict";

const KEY = "plato-ops-key";
const REFRESH_MS = 3000;
let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function fixed(n, d) { return (n || 0).toFixed(d === undefined ? 1 : d); }

function uptime(s) {
  if (s < 120) return s + " s";
  if (s < 7200) return Math.floor(s / 60) + " min";
  if (s < 172800) return Math.floor(s / 3600) + " h";
  return Math.floor(s / 86400) + " d";
}

function bytes(n) {
  const u = ["B", "kB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(1) : Math.round(n)) + " " + u[i];
}

function fill(tbody, rows, empty, cols) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {class: "empty"}, el("td", {colspan: cols}, empty))]));
}

async function api(path) {
  const r = await fetch(path, {headers: {Authorization: "Bearer " + sessionStorage.getItem(KEY)}, cache: "no-store"});
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const err = new Error((body && body.error) || r.status + " " + r.statusText);
    err.status = r.status;
    throw err;
  }
  return body;
}

function drawFleet(f) {
  const rows = f.nodes.map((n) => {
    const addrs = [n.endpoint, n.ws_endpoint, n.rpc_addr && "rpc " + n.rpc_addr, n.admin_addr && "admin " + n.admin_addr].filter(Boolean);
    const state = [];
    if (n.draining) state.push(el("span", {class: "tag bad"}, "draining"));
    if (n.overloaded) state.push(el("span", {class: "tag bad"}, "overloaded"));
    if (!state.length) state.push(el("span", {class: "tag ok"}, "serving"));
    return el("tr", {"data-node-id": n.id, "data-role": n.role},
      el("td", {class: "mono id"}, n.id),
      el("td", {class: "role"}, n.role),
      el("td", {class: "mono version"}, n.version || "?"),
      el("td", {class: "num"}, uptime(n.uptime_seconds)),
      el("td", {class: "mono"}, addrs.map((a) => el("div", {}, a))),
      el("td", {class: "num conns"}, n.conns),
      el("td", {class: "num"}, n.role === "gateway" ? bytes(n.bytes_in_ps) + "/s / " + bytes(n.bytes_out_ps) + "/s" : ""),
      el("td", {class: "num"}, n.load_score === undefined || n.load_score === null ? "" : fixed(n.load_score, 2) + " GB/s"),
      el("td", {}, state));
  });
  fill($("fleet").tBodies[0], rows, "no process is registered", 9);
}

function drawApps(a) {
  const rows = a.apps.map((x) => el("tr", {"data-app": x.app},
    el("td", {class: "mono"}, x.app),
    el("td", {class: "num connections"}, x.connections),
    el("td", {class: "num uplinks"}, fixed(x.uplinks_ps)),
    el("td", {class: "num pushes"}, fixed(x.pushes_ps)),
    el("td", {class: "num errors" + (x.errors_ps > 0 ? " bad" : "")}, fixed(x.errors_ps))));
  fill($("apps").tBodies[0], rows, "no app is declared", 5);
}

function drawPipelines(p) {
  const box = $("pipelines");
  const parts = [];
  for (const s of p.servers) {
    const users = {};
    for (const [app, pipe] of Object.entries(s.apps || {})) (users[pipe] = users[pipe] || []).push(app);
    if (!(s.chains || []).length) {
      parts.push(el("p", {class: "chain hint", "data-server": s.node}, "State server ", el("code", {}, s.node), ": no pipeline (pipeline.dir is empty): signals pass through no stage"));
    }
    for (const c of s.chains || []) {
      const rows = c.stages.map((st) => el("tr", {"data-stage": st.name, "data-pipeline": c.pipeline},
        el("td", {class: "mono"}, st.name),
        el("td", {class: "mono signals"}, signalsCell(st)),
        el("td", {class: "mono"}, st.builtin ? "builtin:" + st.builtin : [el("div", {}, st.plugin), el("div", {class: "hint", title: st.sha256}, "sha256 " + (st.sha256 || "").slice(0, 16) + "…")]),
        el("td", {class: "process" + (st.process === "down" ? " bad" : "")}, st.process + (st.pid ? " (pid " + st.pid + ")" : "")),
        el("td", {class: st.breaker === "closed" ? "" : "bad"}, st.breaker),
        el("td", {class: "num restarts"}, st.restarts),
        el("td", {class: "num calls"}, st.calls),
        el("td", {class: "num p50"}, st.p50_ms === null || st.p50_ms === undefined ? "–" : fixed(st.p50_ms, 3) + " ms"),
        el("td", {class: "num p99"}, st.p99_ms === null || st.p99_ms === undefined ? "–" : fixed(st.p99_ms, 3) + " ms"),
        el("td", {class: "hint"}, st.latency_window || ""),
        el("td", {class: "num failures" + (st.failures > 0 ? " bad" : "")}, st.failures)));
      const table = el("table", {},
        el("thead", {}, el("tr", {}, ["Stage", "Signals", "Binary", "Process", "Breaker", "Restarts", "Calls", "p50", "p99", "Window", "Failures"].map((h) => el("th", {class: ["Restarts", "Calls", "p50", "p99", "Failures"].includes(h) ? "num" : null}, h)))),
        el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", {colspan: 11}, "no stage"))));
      const apps = (users[c.pipeline] || []).join(", ") || (c.pipeline === "default" ? "apps without a file of their own" : "");
      parts.push(el("div", {class: "chain", "data-server": s.node, "data-pipeline": c.pipeline},
        el("h3", {}, "Pipeline ", el("code", {}, c.pipeline), " on ", el("code", {}, s.node), apps ? " — serves " + apps : ""),
        el("div", {class: "hint mono"}, c.source),
        table));
    }
  }
  box.replaceChildren(...(parts.length ? parts : [el("p", {class: "hint"}, "no state server runs a pipeline")]));
}

// signalsCell shows the signals a stage is called for, and below them the listed ones its config
// makes it skip (it said so at Init: they go past it without a call).
function signalsCell(st) {
  const acts = st.acts_on || st.signals || [];
  const skipped = (st.signals || []).filter((s) => !acts.includes(s));
  const out = [el("div", {}, acts.join(", ") || "none")];
  if (skipped.length) out.push(el("div", {class: "hint", title: "listed, but the stage said at Init that its config has nothing to do on them"}, "not called: " + skipped.join(", ")));
  return out;
}

function drawFaults(f) {
  const rows = f.faults.map((x) => el("tr", {"data-kind": x.kind},
    el("td", {class: "mono"}, new Date(x.at).toLocaleString()),
    el("td", {class: "mono"}, x.node || ""),
    el("td", {}, x.kind),
    el("td", {}, x.message)));
  fill($("faults").tBodies[0], rows, "no fault recently", 4);
}

async function refresh() {
  try {
    const [fleet, apps, pipes, faults] = await Promise.all(
      ["/api/v1/fleet", "/api/v1/apps", "/api/v1/pipelines", "/api/v1/faults"].map(api));
    drawFleet(fleet);
    drawApps(apps);
    drawPipelines(pipes);
    drawFaults(faults);
    const un = [].concat(apps.unreachable || [], pipes.unreachable || [], faults.unreachable || []);
    $("unreachable").hidden = !un.length;
    $("unreachable").textContent = un.length ? "Not answering: " + un.map((u) => (u.nodes || []).join(",") + " at " + u.admin_addr + ": " + u.error).join("; ") : "";
    $("status").className = "";
    $("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("status").className = "error";
    $("status").textContent = e.message;
    if (e.status === 401 || e.status === 403) {
      sessionStorage.removeItem(KEY);
      showLogin();
    }
  }
}

function showLogin() {
  clearInterval(timer);
  timer = null;
  $("views").hidden = true;
  $("forget").hidden = true;
  $("login").hidden = false;
  $("key").focus();
}

function start() {
  $("login").hidden = true;
  $("views").hidden = false;
  $("forget").hidden = false;
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("key").value);
    $("key").value = "";
    start();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    $("status").textContent = "key forgotten";
    showLogin();
  });
  if (sessionStorage.getItem(KEY)) start();
  else { $("status").textContent = "enter the ops key"; showLogin(); }
});
