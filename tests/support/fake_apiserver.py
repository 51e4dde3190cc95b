#!/usr/bin/python3
"""A stand-in for the Kubernetes API server over HTTPS, for the tests of the
API-server client (tests/integration/test_kube_client.cpp). It knows a few
fixed paths, each showing one behaviour the client must handle: a JSON answer
that needs the right bearer token, Status errors, watch streams that arrive in
pieces, and a request that is never answered.

Usage: fake_apiserver.py --cert C --key K --token-file T [--client-ca CA]
Listens on a free port of 127.0.0.1 and prints "PORT <n>" on stdout once ready.
The expected token is read from the token file at every request, so a test
rotates it by rewriting the file that the client reads too.
"""

import argparse
import http.server
import json
import socketserver
import ssl
import sys
import time


def status_body(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        sys.stderr.write("fake-apiserver: " + (format % args) + "\n")

    # --- answers -------------------------------------------------------------

    def send_json(self, code, document):
        self.send_bytes(code, json.dumps(document).encode(), "application/json")

    def send_bytes(self, code, data, content_type):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def event(self, kind, name):
        line = {"type": kind, "object": {"kind": "ResourceSlice", "metadata": {"name": name}}}
        return json.dumps(line).encode() + b"\n"

    # --- requests ------------------------------------------------------------

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def bearer(self):
        header = self.headers.get("Authorization") or ""
        return header[len("Bearer "):] if header.startswith("Bearer ") else None

    def expected_token(self):
        with open(self.server.token_file) as f:
            return f.read().strip()

    def peer_common_name(self):
        certificate = self.connection.getpeercert()
        if not certificate:
            return ""
        for entry in certificate.get("subject", ()):
            for key, value in entry:
                if key == "commonName":
                    return value
        return ""

    def handle_any(self):
        body = self.read_body()
        path = self.path
        if path == "/api/v1/nodes/node-a":
            token = self.bearer()
            if token != self.expected_token():
                self.send_json(401, status_body(401, "Unauthorized", "Unauthorized"))
                return
            self.send_json(200, {"kind": "Node", "apiVersion": "v1",
                                 "metadata": {"name": "node-a", "uid": "0e5c-node-a"}, "seenToken": token})
        elif path == "/apis/resource.k8s.io/v1/namespaces/vms/resourceclaims/missing":
            self.send_json(404, status_body(404, "NotFound",
                                            'resourceclaims.resource.k8s.io "missing" not found'))
        elif path == "/apis/resource.k8s.io/v1/resourceslices" and self.command == "POST":
            self.send_json(409, status_body(409, "AlreadyExists",
                                            'resourceslices.resource.k8s.io "slice-a" already exists'))
        elif path == "/echo":
            self.send_json(200, {"method": self.command, "contentType": self.headers.get("Content-Type") or "",
                                 "body": body})
        elif path == "/whoami":
            self.send_json(200, {"commonName": self.peer_common_name()})
        elif path == "/plain-error":
            self.send_bytes(500, b"  internal trouble  \nsecond line\n", "text/plain")
        elif path == "/empty-error":
            self.send_bytes(503, b"", "text/plain")
        elif path == "/apis/resource.k8s.io/v1/resourceslices?watch=1":
            self.start_stream()
            self.chunk(self.event("ADDED", "slice-a"))
            time.sleep(0.05)
            # Two events in one write, then one event split across two writes
            # and followed by an empty line (which the client skips).
            self.chunk(self.event("MODIFIED", "slice-a") + self.event("ADDED", "slice-b"))
            time.sleep(0.05)
            split = self.event("DELETED", "slice-a")
            self.chunk(split[:20])
            time.sleep(0.15)
            self.chunk(split[20:] + b"\n")
            time.sleep(0.05)
            self.chunk(self.event("BOOKMARK", "slice-b"))
            self.end_stream()
        elif path == "/apis/resource.k8s.io/v1/resourceslices?watch=1&hang=1":
            self.start_stream()
            self.chunk(self.event("ADDED", "slice-a"))
            self.wait_for_disconnect()
        elif path == "/apis/resource.k8s.io/v1/resourceslices?watch=1&resourceVersion=1":
            self.send_json(410, status_body(410, "Expired", "too old resource version: 1 (2)"))
        elif path == "/hang":
            self.wait_for_disconnect()
        else:
            self.send_json(404, status_body(404, "NotFound", "the server could not find the requested resource"))

    def wait_for_disconnect(self):
        # Sends nothing more; ends when the client goes away or after a minute.
        # The line tells a test that the request is in flight.
        sys.stderr.write("fake-apiserver: hanging on %s\n" % self.path)
        sys.stderr.flush()
        self.connection.settimeout(60)
        try:
            self.connection.recv(1)
        except (OSError, ssl.SSLError):
            pass
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--client-ca")
    options = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(options.cert, options.key)
    if options.client_ca:
        context.load_verify_locations(options.client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL

    server = Server(("127.0.0.1", 0), Handler)
    server.token_file = options.token_file
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
