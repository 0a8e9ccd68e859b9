#!/usr/bin/env python3
"""A stand-in for a vendor's QKD key manager (KME), for tests: the ETSI GS QKD 014 v1.1.1 REST API
on Python's own TLS stack (the system's OpenSSL, not gng's), with classical certificates from a CA
that is not gng's. SAEs are named by the CN of their client certificate, as vendors do. Keys are
random bytes: there is no QKD link behind this server; it exists to check that gng's KME client
speaks the API to a server gng did not write.

  vendor_kme.py --cert server.pem --key server.key --ca clients-ca.pem [--tls 1.2|1.3] [--key-bits N]

Prints "listening PORT" once it serves on 127.0.0.1. --key-bits makes it ignore the requested
size and hand out keys of N bits (a misbehaving KME).
"""
import argparse
import base64
import http.server
import json
import os
import ssl
import sys
import threading
import urllib.parse
import uuid

held = {}  # key_ID -> (master, slave, key)
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def sae(self):
        cert = self.connection.getpeercert()
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.split("/")
        if len(parts) != 6 or parts[:4] != ["", "api", "v1", "keys"]:
            return self.answer(404, {"message": "no such route"})
        other, op = urllib.parse.unquote(parts[4]), parts[5]
        body = {}
        if method == "POST":
            n = int(self.headers.get("Content-Length", "0"))
            try:
                body = json.loads(self.rfile.read(n) or b"{}")
            except ValueError:
                return self.answer(400, {"message": "bad JSON"})
        query = urllib.parse.parse_qs(url.query)
        me = self.sae()
        if op == "status":
            return self.answer(200, {"source_KME_ID": "VENDOR-KME-1", "target_KME_ID": "VENDOR-KME-2",
                                     "master_SAE_ID": me, "slave_SAE_ID": other, "key_size": 256,
                                     "stored_key_count": 1000, "max_key_count": 100000,
                                     "max_key_per_request": 128, "max_key_size": 1024, "min_key_size": 64,
                                     "max_SAE_ID_count": 0})
        if op == "enc_keys":
            number = int(body.get("number", query.get("number", ["1"])[0]))
            size = int(body.get("size", query.get("size", ["256"])[0]))
            if args.key_bits:
                size = args.key_bits
            keys = []
            with lock:
                for _ in range(number):
                    kid, key = str(uuid.uuid4()), os.urandom(size // 8)
                    held[kid] = (me, other, key)
                    keys.append({"key_ID": kid, "key_ID_extension": {"vendor": "test"},
                                 "key": base64.b64encode(key).decode(), "key_extension": None})
            return self.answer(200, {"keys": keys, "key_container_extension": {"vendor": "test"}})
        if op == "dec_keys":
            ids = [k["key_ID"] for k in body.get("key_IDs", [])] if method == "POST" else query.get("key_ID", [])
            keys = []
            with lock:
                for kid in ids:
                    h = held.get(kid)
                    if not h or h[0] != other or h[1] != me:
                        return self.answer(400, {"message": "key_ID %s unknown" % kid, "details": [{"key_ID": kid}]})
                    del held[kid]
                    keys.append({"key_ID": kid, "key": base64.b64encode(h[2]).decode()})
            return self.answer(200, {"keys": keys})
        return self.answer(404, {"message": "no such operation"})

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")


ap = argparse.ArgumentParser()
ap.add_argument("--cert", required=True)
ap.add_argument("--key", required=True)
ap.add_argument("--ca", required=True)
ap.add_argument("--tls", default="1.2")
ap.add_argument("--key-bits", type=int, default=0)
args = ap.parse_args()

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
version = ssl.TLSVersion.TLSv1_2 if args.tls == "1.2" else ssl.TLSVersion.TLSv1_3
ctx.minimum_version = ctx.maximum_version = version
ctx.load_cert_chain(args.cert, args.key)
ctx.load_verify_locations(args.ca)
ctx.verify_mode = ssl.CERT_REQUIRED

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("listening %d" % server.server_address[1], flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
