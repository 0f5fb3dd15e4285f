#!/usr/bin/env python3
"""A Plato business server in Python, standard library only, reached by webhooks.

Plato POSTs signed JSON to <base>/deliver (uplinks and events), <base>/sessions (which sessions a
logging-in connection joins) and <base>/authenticate (apps.<app>.auth.callback). This server:

- verifies every request: HMAC-SHA256 over "<X-Plato-Timestamp>.<body>" with the app's webhook
  secret, a timestamp within 5 minutes of its clock, and each signature accepted once;
- puts every connection in one room (the sessions callback);
- answers each uplink accepted, then echoes it back to its device and to the room through Plato's
  HTTP API (POST /v1/apps/<app>/push with the app's key);
- prints each event (CONNECTED, DISCONNECTED, RESUMED, UNDELIVERED) on stdout.

Run it (README.md):
  PLATO_WEBHOOK_SECRET=... PLATO_APP_KEY=... python3 business.py --listen 127.0.0.1:8000
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 300  # seconds: a request signed further from now is refused (a replay, or a bad clock)
MAX_BODY = 1 << 20  # Plato's deliveries are batches of small events; refuse anything bigger


class Verifier:
    """Checks X-Plato-Signature and X-Plato-Timestamp, and remembers the signatures it accepted
    for the tolerance, so a captured request replayed inside the window is refused too. (Plato
    signs every attempt afresh, so its own retries never look like replays.)"""

    def __init__(self, secret, tolerance=TOLERANCE):
        self.secret = secret.encode()
        self.tolerance = tolerance
        self.seen = {}  # signature -> when it may be forgotten
        self.lock = threading.Lock()

    def check(self, timestamp, signature, body, now=None):
        """Returns None when the request is genuine and new, else why it is refused."""
        now = time.time() if now is None else now
        try:
            ts = int(timestamp)
        except (TypeError, ValueError):
            return "no valid X-Plato-Timestamp"
        expected = "v1=" + hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not signature or not hmac.compare_digest(expected, signature):
            return "bad signature"
        if abs(now - ts) > self.tolerance:
            return "timestamp too far from now"
        with self.lock:
            for sig, until in list(self.seen.items()):
                if until < now:
                    del self.seen[sig]
            if signature in self.seen:
                return "replayed request"
            self.seen[signature] = ts + self.tolerance
        return None


class Plato:
    """Plato's HTTP API (state.http_addr), called from one worker thread so that webhooks are
    answered at once and pushes never hold up Plato's deliveries."""

    def __init__(self, api, app, key):
        self.api, self.app, self.key = api.rstrip("/"), app, key
        self.jobs = queue.Queue(maxsize=10000)
        threading.Thread(target=self._run, daemon=True).start()

    def push(self, payload, dids=None, session=""):
        body = {"dids": dids or [], "session": session, "payload": base64.b64encode(payload).decode()}
        try:
            self.jobs.put_nowait(body)
        except queue.Full:
            log("push dropped: the push queue is full")

    def _run(self):
        while True:
            body = self.jobs.get()
            req = urllib.request.Request(
                f"{self.api}/v1/apps/{self.app}/push", data=json.dumps(body).encode(), method="POST",
                headers={"Content-Type": "application/json", "Authorization": "Bearer " + self.key})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    out = json.load(resp)
                statuses = [t["status"] for t in out.get("targets", [])]
                log(f"push ok msg_id={out.get('msg_id')} route={out.get('route')} targets={statuses} session={body['session'] or '-'}")
            except urllib.error.HTTPError as e:
                log(f"push refused: HTTP {e.code} {e.read()[:200]!r}")
            except (urllib.error.URLError, OSError, ValueError) as e:
                log(f"push failed: {e}")


def log(line):
    print(line, flush=True)


class Business:
    def __init__(self, plato, room):
        self.plato, self.room = plato, room

    def deliver(self, req):
        results = []
        for ev in req["events"]:
            kind = ev["kind"]
            if kind == "UPLINK":
                text = base64.b64decode(ev["payload"])
                log(f"uplink app={ev['app_id']} did={ev['did']} uid={ev['uid']} seq={ev['seq']} payload={text!r}")
                if text.startswith(b"refuse"):
                    # A code from 2000 to 2999 reaches the device as its uplink ACK.
                    results.append({"code": 2001, "message": "refused by the Python business"})
                    continue
                results.append({"code": 0})
                self.plato.push(b"echo: " + text, dids=[ev["did"]])
                self.plato.push(ev["uid"].encode() + b": " + text, session=self.room)
            else:
                # CONNECTED, DISCONNECTED, RESUMED, UNDELIVERED. An event may come late (Plato
                # retries a failed delivery): a connection is over at its DISCONNECTED whatever
                # arrives for its conn_id after it.
                log(f"event {kind} app={ev['app_id']} did={ev['did']} uid={ev['uid']} conn_id={ev['conn_id']} reason={ev['reason']}")
                results.append({"code": 0})
        # One result per event, in order: anything else and Plato ACKs none of the uplinks.
        return {"results": results}

    def sessions(self, req):
        rooms = [self.room]
        log(f"sessions app={req['app_id']} did={req['did']} uid={req['uid']} -> {rooms}")
        return {"sessions": rooms}

    def authenticate(self, req):
        # A stand-in for checking a session token: "user:<uid>" is user <uid>. A real server
        # looks the credential up in its own store.
        cred = req["credential"]
        if cred.startswith("user:") and len(cred) > 5:
            return {"code": 0, "uid": cred[5:], "did": "", "expires_at": 0}
        return {"code": 2003, "message": "unknown credential"}


def make_handler(verifier, business, base):
    routes = {base + "/deliver": business.deliver, base + "/sessions": business.sessions,
              base + "/authenticate": business.authenticate}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: Plato reuses its connections

        def do_POST(self):
            route = routes.get(self.path)
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self.reply(400, {"error": "bad Content-Length"}, close=True)
            if length < 0 or length > MAX_BODY:
                return self.reply(413, {"error": "body too large"}, close=True)
            body = self.rfile.read(length)
            if route is None:
                return self.reply(404, {"error": "no such route"})
            why = verifier.check(self.headers.get("X-Plato-Timestamp"), self.headers.get("X-Plato-Signature"), body)
            if why:
                log(f"refused {self.path}: {why}")
                return self.reply(401, {"error": why})
            try:
                out = route(json.loads(body))
            except (ValueError, KeyError, TypeError) as e:
                return self.reply(400, {"error": f"bad request: {e}"})
            self.reply(200, out)

        def reply(self, status, obj, close=False):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            pass  # one line per request is noise; events and refusals are logged above

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:8000", help="host:port to serve webhooks on (port 0: any free port)")
    p.add_argument("--path", default="/plato", help="the webhook URL's path: apps.<app>.business is http://<listen><path>")
    p.add_argument("--api", default=os.environ.get("PLATO_API", "http://127.0.0.1:8081"), help="Plato's HTTP API (state.http_addr); env PLATO_API")
    p.add_argument("--app", default=os.environ.get("PLATO_APP", "demo"), help="the app ID; env PLATO_APP")
    p.add_argument("--room", default="lobby", help="the session every connection joins and uplinks are echoed to")
    args = p.parse_args()
    secret, key = os.environ.get("PLATO_WEBHOOK_SECRET", ""), os.environ.get("PLATO_APP_KEY", "")
    if len(secret) < 16:
        sys.exit("set PLATO_WEBHOOK_SECRET to the app's apps.<app>.webhook_secret (at least 16 bytes)")
    if not key:
        sys.exit("set PLATO_APP_KEY to one of the app's apps.<app>.keys (for pushes)")
    host, _, port = args.listen.rpartition(":")
    business = Business(Plato(args.api, args.app, key), args.room)
    srv = ThreadingHTTPServer((host, int(port)), make_handler(Verifier(secret), business, args.path.rstrip("/")))
    srv.daemon_threads = True
    h, pt = srv.server_address[:2]
    log(f"listening on http://{h}:{pt}{args.path.rstrip('/')} for app {args.app}, pushing to {args.api}")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
