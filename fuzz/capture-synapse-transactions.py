#!/usr/bin/env python3
# Captures real appservice transactions from Synapse for the fuzz seed corpus
# (fuzz/corpus/appservice_transaction/synapse-*.json, fuzz/corpus/operator_message/synapse-*.json).
#
# Run with the Synapse virtualenv the test rig installs (scripts/install-synapse.sh):
#   ~/.cache/switchboard/synapse-venv/bin/python fuzz/capture-synapse-transactions.py
# It starts a throwaway Synapse in /tmp/capture/hs whose appservice is a tiny HTTP server that
# writes every transaction body it is pushed to /tmp/capture/out/txn-<id>.json, then acts in a
# room as an operator would: text, HTML, a reply, an edit, an emote, a notice, a command, files,
# a reaction, a redaction, typing, a read receipt, a topic change.
import json, os, subprocess, sys, threading, time, urllib.request, socket
from http.server import BaseHTTPRequestHandler, HTTPServer
import yaml

D = "/tmp/capture/hs"; OUT = "/tmp/capture/out"
os.makedirs(D, exist_ok=True); os.makedirs(OUT, exist_ok=True)
VENV = os.path.expanduser("~/.cache/switchboard/synapse-venv/bin")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

HS_PORT, AS_PORT = free_port(), free_port()
AS_TOKEN, HS_TOKEN = "a" * 64, "h" * 64

class AS(BaseHTTPRequestHandler):
    def do_PUT(self):
        n = int(self.headers.get("content-length", 0)); body = self.rfile.read(n)
        name = self.path.rsplit("/", 1)[-1].split("?")[0]
        open(f"{OUT}/txn-{name}.json", "wb").write(body)
        self.send_response(200); self.send_header("content-type", "application/json"); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def do_GET(self):
        self.send_response(404); self.send_header("content-type", "application/json"); self.send_header("content-length", "39"); self.end_headers()
        self.wfile.write(b'{"errcode":"M_NOT_FOUND","error":"no"}')
    do_POST = do_GET
    def log_message(self, *a): pass

threading.Thread(target=HTTPServer(("127.0.0.1", AS_PORT), AS).serve_forever, daemon=True).start()

reg = {"id": "switchboard", "url": f"http://127.0.0.1:{AS_PORT}", "as_token": AS_TOKEN, "hs_token": HS_TOKEN,
       "sender_localpart": "switchboard", "rate_limited": False, "receive_ephemeral": True,
       "de.sorunome.msc2409.push_ephemeral": True,
       "namespaces": {"users": [{"exclusive": True, "regex": "@sb_.*:localhost"}], "aliases": [], "rooms": []}}
yaml.safe_dump(reg, open(f"{D}/registration.yaml", "w"))
if not os.path.exists(f"{D}/homeserver.yaml"):
    subprocess.run([f"{VENV}/python", "-m", "synapse.app.homeserver", "--server-name", "localhost", "--config-path",
                    f"{D}/homeserver.yaml", "--generate-config", "--report-stats=no"], cwd=D, check=True)
cfg = yaml.safe_load(open(f"{D}/homeserver.yaml"))
cfg["listeners"] = [{"port": HS_PORT, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
                     "resources": [{"names": ["client"], "compress": False}]}]
cfg["database"] = {"name": "sqlite3", "args": {"database": f"{D}/homeserver.db"}}
cfg["trusted_key_servers"] = []
cfg["app_service_config_files"] = [f"{D}/registration.yaml"]
cfg["registration_shared_secret"] = "secret"
cfg["presence"] = {"enabled": False}
for k in ["rc_message", "rc_registration", "rc_login", "rc_joins"]:
    cfg.pop(k, None)
cfg["rc_message"] = {"per_second": 1000, "burst_count": 1000}
yaml.safe_dump(cfg, open(f"{D}/homeserver.yaml", "w"))
hs = subprocess.Popen([f"{VENV}/python", "-m", "synapse.app.homeserver", "-c", f"{D}/homeserver.yaml"], cwd=D,
                      stdout=open(f"{D}/out.log", "w"), stderr=subprocess.STDOUT)
BASE = f"http://127.0.0.1:{HS_PORT}"

def call(method, path, body=None, token=None, raw=None, ctype="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None: req.add_header("content-type", ctype)
    if token: req.add_header("authorization", "Bearer " + token)
    return json.loads(urllib.request.urlopen(req).read() or b"{}")

try:
    for _ in range(100):
        try: call("GET", "/_matrix/client/versions"); break
        except Exception: time.sleep(0.2)
    subprocess.run([f"{VENV}/register_new_matrix_user", "-u", "alice", "-p", "alicepass", "-a", "-k", "secret", BASE],
                   check=False, capture_output=True)
    tok = call("POST", "/_matrix/client/v3/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "alicepass"})["access_token"]
    call("POST", "/_matrix/client/v3/register", {"type": "m.login.application_service", "username": "sb_webchat_visitor"}, AS_TOKEN)
    room = call("POST", "/_matrix/client/v3/createRoom", {"name": "Jane Doe (webchat)", "preset": "private_chat",
                "invite": ["@switchboard:localhost", "@sb_webchat_visitor:localhost"]}, tok)["room_id"]
    q = urllib.parse.quote
    call("POST", f"/_matrix/client/v3/rooms/{q(room)}/join", {}, AS_TOKEN)
    call("POST", f"/_matrix/client/v3/rooms/{q(room)}/join?user_id={q('@sb_webchat_visitor:localhost')}", {}, AS_TOKEN)
    n = [0]
    def send(content, etype="m.room.message", token=tok):
        n[0] += 1
        return call("PUT", f"/_matrix/client/v3/rooms/{q(room)}/send/{etype}/t{n[0]}", content, token)["event_id"]
    first = send({"msgtype": "m.text", "body": "Hello, my order has not arrived"}, token=AS_TOKEN + "")
    a = send({"msgtype": "m.text", "body": "Sorry! **Checking** now", "format": "org.matrix.custom.html", "formatted_body": "Sorry! <b>Checking</b> now"})
    send({"msgtype": "m.text", "body": "> <@alice:localhost> Sorry!\n\nfound it", "format": "org.matrix.custom.html",
          "formatted_body": f"<mx-reply><blockquote><a href=\"https://matrix.to/#/{room}/{a}\">In reply to</a> Sorry!</blockquote></mx-reply>found it",
          "m.relates_to": {"m.in_reply_to": {"event_id": a}}})
    send({"msgtype": "m.text", "body": "* Sorry! Checking now (edited)", "m.new_content": {"msgtype": "m.text", "body": "Sorry! Checking now (edited)"},
          "m.relates_to": {"rel_type": "m.replace", "event_id": a}})
    send({"msgtype": "m.emote", "body": "waves"})
    send({"msgtype": "m.notice", "body": "a notice"})
    send({"msgtype": "m.text", "body": "!sb note call back at 5"})
    mxc = call("POST", "/_matrix/media/v3/upload?filename=label.pdf", token=tok, raw=b"%PDF-1.4 test", ctype="application/pdf")["content_uri"]
    send({"msgtype": "m.file", "body": "return-label.pdf", "filename": "return-label.pdf", "url": mxc, "info": {"mimetype": "application/pdf", "size": 13}})
    send({"msgtype": "m.image", "body": "screenshot.png", "url": mxc, "info": {"mimetype": "image/png", "size": 13, "w": 1, "h": 1}})
    send({"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}}, etype="m.reaction")
    call("PUT", f"/_matrix/client/v3/rooms/{q(room)}/redact/{a}/r1", {"reason": "typo"}, tok)
    call("PUT", f"/_matrix/client/v3/rooms/{q(room)}/typing/{q('@alice:localhost')}", {"typing": True, "timeout": 30000}, tok)
    call("POST", f"/_matrix/client/v3/rooms/{q(room)}/receipt/m.read/{q(first)}", {}, tok)
    call("PUT", f"/_matrix/client/v3/rooms/{q(room)}/state/m.room.topic/", {"topic": "jane@example.com · webchat"}, tok)
    time.sleep(3)
finally:
    hs.terminate(); hs.wait()
print(sorted(os.listdir(OUT)))
