// The demo chat in a browser, on the JS device SDK (sdk/js, copied to ./plato/): it asks the demo's
// backend (this page's origin) for a credential, ipconf for WebSocket gateways, and talks to the
// demo business server the way `plato chat` does. ?ipconf=URL names ipconf (default: port 8080 of
// this page's host); ?did=NAME connects at once.
import { PlatoClient, PlatoError, AckTimeoutError, OutcomeUnknownError } from "./plato/index.js";

const params = new URLSearchParams(location.search);
const ipconfURL = params.get("ipconf") || `${location.protocol}//${location.hostname}:8080`;
const app = params.get("app") || "demo";
const $ = (id) => document.getElementById(id);
const log = $("log");

function line(text, cls = "") {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

function status(text) {
  $("status").textContent = text;
}

// format renders a demo downlink as `plato chat` does.
function format(m) {
  let d;
  try {
    d = JSON.parse(m.text());
  } catch {
    return `[msg ${m.msgId}] ${m.text()}`;
  }
  if (!d || !d.from) return `[msg ${m.msgId}] ${m.text()}`;
  const system = d.from === "plato-demo";
  if (system && d.room && Array.isArray(d.who)) return `[${d.room}] online: ${d.who.join(", ")}`;
  if (system && d.room) return `[${d.room}] * ${d.text}`;
  if (system) return `* ${d.text}`;
  if (d.room) return `[${d.room}] ${d.from}: ${d.text}`;
  return `@${d.from}: ${d.text}`;
}

// parse reads a typed line as `plato chat` does: a message for the demo, or a note.
function parse(text, current) {
  const t = text.trim();
  if (!t) return {};
  const sp = t.indexOf(" ");
  const cmd = sp < 0 ? t : t.slice(0, sp);
  const rest = sp < 0 ? "" : t.slice(sp + 1).trim();
  if (cmd === "/help") return { note: "@bob hi · #lobby hi · hi (to the current room) · /join lobby · /leave lobby · /who [lobby]" };
  if (cmd === "/join" && rest) return { msg: { join: rest }, room: rest };
  if (cmd === "/leave" && rest) return { msg: { leave: rest }, room: rest === current ? "" : undefined };
  if (cmd === "/who") return rest || current ? { msg: { who: rest || current } } : { note: "say which room: /who lobby" };
  if (cmd.startsWith("/")) return { note: `unknown command ${cmd}; /help lists them` };
  if (cmd.length > 1 && cmd[0] === "@" && rest) return { msg: { to: cmd.slice(1), text: rest } };
  if (cmd.length > 1 && cmd[0] === "#" && rest) return { msg: { room: cmd.slice(1), text: rest }, room: cmd.slice(1) };
  if (current) return { msg: { room: current, text: t } };
  return { note: 'no current room: "@bob hello" to message bob, "/join lobby" to join a room' };
}

let client;
let current = "";

async function connect(did) {
  $("connect").disabled = true;
  status("connecting…");
  const credential = async () => {
    const r = await fetch(`/login?app_id=${encodeURIComponent(app)}&did=${encodeURIComponent(did)}`);
    if (!r.ok) throw new Error(`login: HTTP ${r.status} ${await r.text()}`);
    return (await r.json()).credential;
  };
  try {
    client = await PlatoClient.connect({
      ipconfURL, appId: app, did, credential, transport: "ws", platform: "plato-web-chat/1",
      reconnectMinMs: 200, reconnectMaxMs: 5000,
      onMessage: (m) => line(format(m)),
      onState: (s) => {
        document.body.dataset.state = s.kind;
        switch (s.kind) {
          case "disconnected":
            status("reconnecting…");
            line(`* connection lost (${s.error?.message ?? "closed"})`, "note");
            break;
          case "resumed":
            status(`connected as ${did} (conn ${s.connId})`);
            line(`* reconnected: resumed (conn ${s.connId})`, "note");
            break;
          case "connected":
            status(`connected as ${did} (conn ${s.connId})`);
            break;
          case "closed":
            status("not connected");
            if (s.error) line(`* connection closed: ${s.error.message}`, "error");
            $("input").disabled = $("send").disabled = true;
            $("connect").disabled = false;
            break;
        }
      },
    });
  } catch (e) {
    status("not connected");
    line(`could not connect: ${e.message}`, "error");
    $("connect").disabled = false;
    return;
  }
  document.body.dataset.state = "connected";
  status(`connected as ${did} (conn ${client.connId})`);
  line(`connected to ${client.endpoint} as ${did}. Type /help for commands.`, "note");
  $("input").disabled = $("send").disabled = false;
  $("input").focus();
}

async function say(text) {
  const p = parse(text, current);
  if (p.note) return line(p.note, "note");
  if (!p.msg) return;
  line(`> ${text}`, "me");
  // The room becomes current at once, so a line typed before the answer goes there too; a refusal
  // puts the previous one back.
  const before = current;
  if (p.room !== undefined) current = p.room;
  try {
    await client.send(JSON.stringify(p.msg));
  } catch (e) {
    if (p.room !== undefined && current === p.room) current = before;
    if (e instanceof PlatoError) line(`not sent (${e.code}): ${e.detail || e.message}`, "error");
    else if (e instanceof AckTimeoutError || e instanceof OutcomeUnknownError) line("* no answer in time; that message may not have been sent", "error");
    else line(`not sent: ${e.message}`, "error");
  }
}

$("who").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const did = $("did").value.trim();
  if (did && !client?.connected) connect(did);
});
$("say").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("input").value;
  $("input").value = "";
  say(text);
});
if (params.get("did")) {
  $("did").value = params.get("did");
  connect(params.get("did"));
}
