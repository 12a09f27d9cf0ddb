# SPDX-License-Identifier: MIT
# Used by mirror-etcd.sh: an "etcd gateway" on 127.0.0.1 that answers
# every request with something a real etcd never sends, to check that
# the etcd store refuses it cleanly.
#   etcd-fake.py PORTFILE MODEFILE: serve on a free port (written to
#   PORTFILE); the answers follow the mode read from MODEFILE at each
#   request (see ANSWERS).
import base64
import http.server
import json
import os
import sys

GRANT = {"ID": "7", "TTL": "10"}
OWNED = {"succeeded": True, "responses": [{"response_put": {}}]}


def kv_range(value):
    return {"kvs": [{"key": "eA==", "value": value, "mod_revision": "3"}]}


# mode: {path: (HTTP status, body)}; "*" for every other path
ANSWERS = {
    "notjson": {"*": (200, "garbage{")},
    "array": {"*": (200, "[]")},
    "deep": {"*": (200, "[" * 100000)},
    "huge": {"*": (200, '{"x":"' + "a" * 1000000 + '"}')},
    "http500": {"*": (500, {"error": 3, "message": 5})},
    "grant-badid": {"/v3/lease/grant": (200, {"ID": {"a": 1}, "TTL": "10"})},
    "grant-hugeid": {"/v3/lease/grant":
                     (200, {"ID": "99999999999999999999999", "TTL": "10"})},
    "txn-weird": {"/v3/lease/grant": (200, GRANT),
                  "/v3/kv/txn": (200, {"succeeded": "yes", "responses": "x"})},
    "owner-junk": {"/v3/lease/grant": (200, GRANT),
                   "/v3/kv/txn": (200, {"responses": [{"response_range": {
                       "kvs": [{"value": base64.b64encode(
                           b"\x1b[31mevil\n").decode(), "lease": "x"}]}}]})},
    "get-big": {"/v3/lease/grant": (200, GRANT), "/v3/kv/txn": (200, OWNED),
                "/v3/kv/range": (200, kv_range(
                    base64.b64encode(b"x" * 70000).decode()))},
    "get-notb64": {"/v3/lease/grant": (200, GRANT), "/v3/kv/txn": (200, OWNED),
                   "/v3/kv/range": (200, kv_range("@@@@"))},
    "get-number": {"/v3/lease/grant": (200, GRANT), "/v3/kv/txn": (200, OWNED),
                   "/v3/kv/range": (200, kv_range(5))},
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = open(sys.argv[2]).read().strip()
        answers = ANSWERS[mode]
        code, body = answers.get(self.path, answers.get("*", (200, {})))
        if not isinstance(body, str):
            body = json.dumps(body)
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
