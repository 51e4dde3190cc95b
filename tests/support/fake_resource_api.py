#!/usr/bin/python3
"""A stand-in for the Kubernetes API server's DRA resources over HTTPS, for the
in-process test of the DRA side (tests/integration/test_dra_side.cpp), which
runs in the sanitizer stages where no real cluster runs.

It keeps an in-memory store and serves what the DRA side calls:
  GET    /api/v1/nodes/<name>                            a Node with metadata.uid
  GET    /apis/resource.k8s.io/v1/resourceslices         LIST (fieldSelector spec.nodeName=..,spec.driver=..)
  GET    /apis/resource.k8s.io/v1/resourceslices?watch=1 WATCH: a chunked stream of {"type","object"} lines,
                                                         the current objects as ADDED first (or, with
                                                         resourceVersion=N, every change after N), then
                                                         every change; ends after timeoutSeconds
  POST   /apis/resource.k8s.io/v1/resourceslices         create (metadata.generateName + 5 random [a-z0-9])
  GET, PUT, DELETE /apis/resource.k8s.io/v1/resourceslices/<name>
                                                         PUT needs the stored resourceVersion (409 otherwise);
                                                         DELETE honours preconditions {uid, resourceVersion}
  GET    /apis/resource.k8s.io/v1/namespaces/<ns>/resourceclaims/<name>
Every one of these needs the bearer token of the token file (read at every
request, as fake_apiserver.py does). The server checks what the real one
would refuse from a driver: a slice without driver, nodeName or pool, more
devices than the API allows, two devices of one name, a change of an
immutable field.

Control endpoints for the test, without a token, never failed or held:
  PUT    /test/claims                 body: a ResourceClaim object, stored by namespace/name
  PUT    /test/nodes                  body: {"name", "uid"}: the UID GET node answers (default "uid-<name>")
  GET    /test/slices[?node=<n>]      every stored slice (of node n), sorted by name, as {"items": [...]}
  DELETE /test/slices?node=<n>        deletes every slice of node n, as the kubelet does when it starts
  PUT    /test/fail                   body: {"seconds": s} or {} (until told): every resource call is
                                      answered 503 and open watches end
  PUT    /test/hang                   body: {} or {"watches": true}: every resource call (or every new
                                      watch) is held unanswered until told
  PUT    /test/recover                ends failing and holding
  GET    /test/counts                 {"requests": {"<resource> <verb>": n}, "refused": n, "held": n,
                                      "watching": n}: requests answered by the store (refused = 503s,
                                      held = calls held so far, watching = open watches now)
  PUT    /test/reset-counts           sets every count to zero

Usage: fake_resource_api.py --cert C --key K --token-file T
Listens on a free port of 127.0.0.1 and prints "PORT <n>" on stdout once ready.
"""

import argparse
import collections
import datetime
import http.server
import json
import queue
import random
import socketserver
import ssl
import string
import sys
import threading
import time
import urllib.parse

SLICES = "/apis/resource.k8s.io/v1/resourceslices"
CLAIMS_PREFIX = "/apis/resource.k8s.io/v1/namespaces/"
NODES_PREFIX = "/api/v1/nodes/"
MAX_DEVICES = 128
MAX_DEVICES_WITH_TAINTS = 64


def status_body(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class ApiError(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def clone(obj):
    """A deep copy of a JSON value (much faster than copy.deepcopy for these)."""
    return json.loads(json.dumps(obj))


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    """Objects, counts and the failure modes; every method takes the lock."""

    def __init__(self):
        self.lock = threading.Condition()
        self.slices = {}          # name -> object
        self.claims = {}          # (namespace, name) -> object
        self.node_uids = {}       # name -> uid
        self.version = 1000       # like an etcd revision, never "0" (which a watch takes as "from now")
        self.watchers = []        # queue.Queue per open watch
        self.history = []         # (resourceVersion, type, object) of every change, oldest first
        self.counts = collections.Counter()
        self.refused = 0
        self.held = 0
        self.fail_until = None    # None: not failing; float('inf'): until told
        self.hanging = None       # None, "all" or "watches": which calls are held
        self.fail_epoch = 0       # bumped when failing starts, so open watches end

    # --- failure modes -----------------------------------------------------

    def failing(self):
        return self.fail_until is not None and time.monotonic() < self.fail_until

    def hold_while_hanging(self, is_watch):
        """Waits while calls of this kind are held (at most a minute); counts the hold."""
        with self.lock:
            def holding():
                return self.hanging == "all" or (self.hanging == "watches" and is_watch)
            if not holding():
                return
            self.held += 1
            deadline = time.monotonic() + 60
            while holding() and time.monotonic() < deadline:
                self.lock.wait(0.5)

    # --- slices --------------------------------------------------------------

    def next_version(self):
        self.version += 1
        return str(self.version)

    def notify(self, kind, obj):
        self.history.append((self.version, kind, clone(obj)))
        for watcher in self.watchers:
            watcher.put((kind, clone(obj)))

    def validate_slice(self, obj):
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise ApiError(422, "Invalid", "spec: Required value")
        for field in ("driver", "nodeName"):
            if not isinstance(spec.get(field), str) or not spec[field]:
                raise ApiError(422, "Invalid", "spec.%s: Required value" % field)
        pool = spec.get("pool")
        if not isinstance(pool, dict) or not pool.get("name"):
            raise ApiError(422, "Invalid", "spec.pool.name: Required value")
        if not isinstance(pool.get("generation"), int) or pool["generation"] < 0:
            raise ApiError(422, "Invalid", "spec.pool.generation: Invalid value")
        if not isinstance(pool.get("resourceSliceCount"), int) or pool["resourceSliceCount"] < 1:
            raise ApiError(422, "Invalid", "spec.pool.resourceSliceCount: Invalid value")
        devices = spec.get("devices", [])
        if not isinstance(devices, list):
            raise ApiError(422, "Invalid", "spec.devices: must be a list")
        tainted = any(d.get("taints") for d in devices if isinstance(d, dict))
        limit = MAX_DEVICES_WITH_TAINTS if tainted else MAX_DEVICES
        if len(devices) > limit:
            raise ApiError(422, "Invalid", "spec.devices: Too many: %d: must have at most %d items"
                           % (len(devices), limit))
        names = [d.get("name") for d in devices if isinstance(d, dict)]
        if len(set(names)) != len(names) or any(not isinstance(n, str) or not n for n in names):
            raise ApiError(422, "Invalid", "spec.devices[].name: Duplicate or missing value")

    def stamp_taints(self, obj, old=None):
        """Sets timeAdded on taints without it, keeping the time of an unchanged one."""
        previous = {}
        if old:
            for device in old.get("spec", {}).get("devices", []):
                for taint in device.get("taints", []):
                    previous[(device.get("name"), taint.get("key"), taint.get("value"), taint.get("effect"))] = \
                        taint.get("timeAdded")
        for device in obj.get("spec", {}).get("devices", []):
            for taint in device.get("taints", []) or []:
                if isinstance(taint, dict) and not taint.get("timeAdded"):
                    key = (device.get("name"), taint.get("key"), taint.get("value"), taint.get("effect"))
                    taint["timeAdded"] = previous.get(key) or now_rfc3339()

    def create_slice(self, obj):
        with self.lock:
            if not isinstance(obj, dict) or obj.get("kind") != "ResourceSlice":
                raise ApiError(400, "BadRequest", "the body is not a ResourceSlice")
            metadata = obj.setdefault("metadata", {})
            if metadata.get("resourceVersion"):
                raise ApiError(400, "BadRequest", "resourceVersion should not be set on objects to be created")
            self.validate_slice(obj)
            name = metadata.get("name")
            if not name:
                prefix = metadata.get("generateName")
                if not prefix:
                    raise ApiError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
                while True:
                    name = prefix + "".join(random.choice(string.ascii_lowercase + string.digits)
                                            for _ in range(5))
                    if name not in self.slices:
                        break
            if name in self.slices:
                raise ApiError(409, "AlreadyExists", 'resourceslices.resource.k8s.io "%s" already exists' % name)
            if len(name) > 253:
                raise ApiError(422, "Invalid", "metadata.name: Too long")
            metadata["name"] = name
            metadata["uid"] = "uid-%s-%d" % (name, self.version + 1)
            metadata["resourceVersion"] = self.next_version()
            metadata["creationTimestamp"] = now_rfc3339()
            self.stamp_taints(obj)
            self.slices[name] = obj
            self.notify("ADDED", obj)
            return clone(obj)

    def update_slice(self, name, obj):
        with self.lock:
            old = self.slices.get(name)
            if old is None:
                raise ApiError(404, "NotFound", 'resourceslices.resource.k8s.io "%s" not found' % name)
            if not isinstance(obj, dict) or obj.get("kind") != "ResourceSlice":
                raise ApiError(400, "BadRequest", "the body is not a ResourceSlice")
            metadata = obj.setdefault("metadata", {})
            if metadata.get("name") != name:
                raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                               % (metadata.get("name"), name))
            if metadata.get("resourceVersion") != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on resourceslices.resource.k8s.io '
                               '"%s": the object has been modified; please apply your changes to the latest '
                               'version and try again' % name)
            self.validate_slice(obj)
            for field in ("driver", "nodeName"):
                if obj["spec"][field] != old["spec"][field]:
                    raise ApiError(422, "Invalid", "spec.%s: Invalid value: field is immutable" % field)
            if obj["spec"]["pool"]["name"] != old["spec"]["pool"]["name"]:
                raise ApiError(422, "Invalid", "spec.pool.name: Invalid value: field is immutable")
            metadata["uid"] = old["metadata"]["uid"]
            metadata["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            metadata.pop("generateName", None)
            if "generateName" in old["metadata"]:
                metadata["generateName"] = old["metadata"]["generateName"]
            metadata["resourceVersion"] = self.next_version()
            self.stamp_taints(obj, old)
            self.slices[name] = obj
            self.notify("MODIFIED", obj)
            return clone(obj)

    def delete_slice(self, name, preconditions):
        with self.lock:
            old = self.slices.get(name)
            if old is None:
                raise ApiError(404, "NotFound", 'resourceslices.resource.k8s.io "%s" not found' % name)
            for field in ("uid", "resourceVersion"):
                wanted = preconditions.get(field)
                if wanted is not None and wanted != old["metadata"][field]:
                    raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on resourceslices.resource.k8s.io '
                                   '"%s": Precondition failed: %s in precondition: %s, %s in object meta: %s'
                                   % (name, field.capitalize(), wanted, field.capitalize(),
                                      old["metadata"][field]))
            del self.slices[name]
            old["metadata"]["resourceVersion"] = self.next_version()
            self.notify("DELETED", old)
            return clone(old)

    def delete_node_slices(self, node):
        with self.lock:
            names = [n for n, s in self.slices.items() if s["spec"]["nodeName"] == node]
            for name in names:
                old = self.slices.pop(name)
                old["metadata"]["resourceVersion"] = self.next_version()
                self.notify("DELETED", old)
            return len(names)


def selector_matches(selector, obj):
    """A field selector of equalities on spec.nodeName and spec.driver."""
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        value = value.lstrip("=")
        spec = obj.get("spec", {})
        if key == "spec.nodeName":
            actual = spec.get("nodeName")
        elif key == "spec.driver":
            actual = spec.get("driver")
        elif key == "metadata.name":
            actual = obj.get("metadata", {}).get("name")
        else:
            raise ApiError(400, "BadRequest", 'field label not supported: %s' % key)
        if actual != value:
            return False
    return True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        sys.stderr.write("fake-resource-api: " + (format % args) + "\n")

    @property
    def store(self):
        return self.server.store

    # --- answers -------------------------------------------------------------

    def send_json(self, code, document):
        data = json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_error_status(self, error):
        self.send_json(error.code, status_body(error.code, error.reason, error.message))

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # --- requests ------------------------------------------------------------

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def json_body(self, body):
        if not body:
            return {}
        try:
            return json.loads(body)
        except ValueError:
            raise ApiError(400, "BadRequest", "the body is not JSON")

    def authorized(self):
        header = self.headers.get("Authorization") or ""
        token = header[len("Bearer "):] if header.startswith("Bearer ") else None
        with open(self.server.token_file) as f:
            return token == f.read().strip()

    def handle_any(self):
        body = self.read_body()
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        try:
            if url.path.startswith("/test/"):
                self.control(url.path, query, body)
            else:
                self.resource(url.path, query, body)
        except ApiError as error:
            self.send_error_status(error)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    # --- the API ---------------------------------------------------------------

    def resource(self, path, query, body):
        if not self.authorized():
            raise ApiError(401, "Unauthorized", "Unauthorized")
        is_watch = (query.get("watch") or [""])[0] in ("1", "true")
        self.store.hold_while_hanging(is_watch)
        with self.store.lock:
            if self.store.failing():
                self.store.refused += 1
                raise ApiError(503, "ServiceUnavailable", "the fake API server is unavailable")
        method = self.command
        if path.startswith(NODES_PREFIX) and method == "GET":
            name = path[len(NODES_PREFIX):]
            self.count("nodes GET")
            with self.store.lock:
                uid = self.store.node_uids.get(name, "uid-" + name)
            self.send_json(200, {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name, "uid": uid}})
        elif path == SLICES and method == "GET":
            selector = (query.get("fieldSelector") or [""])[0]
            if is_watch:
                self.count("slices WATCH")
                self.watch(selector, int((query.get("timeoutSeconds") or ["1800"])[0]),
                           (query.get("resourceVersion") or [""])[0])
            else:
                self.count("slices LIST")
                with self.store.lock:
                    items = [clone(s) for _, s in sorted(self.store.slices.items())
                             if selector_matches(selector, s)]
                    version = str(self.store.version)
                self.send_json(200, {"kind": "ResourceSliceList", "apiVersion": "resource.k8s.io/v1",
                                     "metadata": {"resourceVersion": version}, "items": items})
        elif path == SLICES and method == "POST":
            self.count("slices POST")
            self.send_json(201, self.store.create_slice(self.json_body(body)))
        elif path.startswith(SLICES + "/"):
            name = path[len(SLICES) + 1:]
            if method == "GET":
                self.count("slices GET")
                with self.store.lock:
                    found = clone(self.store.slices.get(name))
                if found is None:
                    raise ApiError(404, "NotFound", 'resourceslices.resource.k8s.io "%s" not found' % name)
                self.send_json(200, found)
            elif method == "PUT":
                self.count("slices PUT")
                self.send_json(200, self.store.update_slice(name, self.json_body(body)))
            elif method == "DELETE":
                self.count("slices DELETE")
                options = self.json_body(body)
                preconditions = options.get("preconditions") or {}
                self.send_json(200, self.store.delete_slice(name, preconditions))
            else:
                raise ApiError(405, "MethodNotAllowed", "method %s is not supported" % method)
        elif path.startswith(CLAIMS_PREFIX) and method == "GET":
            parts = path[len(CLAIMS_PREFIX):].split("/")
            if len(parts) != 3 or parts[1] != "resourceclaims":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self.count("claims GET")
            with self.store.lock:
                claim = clone(self.store.claims.get((parts[0], parts[2])))
            if claim is None:
                raise ApiError(404, "NotFound", 'resourceclaims.resource.k8s.io "%s" not found' % parts[2])
            self.send_json(200, claim)
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def count(self, key):
        with self.store.lock:
            self.store.counts[key] += 1

    def watch(self, selector, timeout_seconds, resource_version):
        """Without a resourceVersion (or "0"): the current objects as ADDED, then
        every change. From a resourceVersion: every change after it."""
        events = queue.Queue()
        with self.store.lock:
            if resource_version in ("", "0"):
                initial = [("ADDED", clone(s)) for _, s in sorted(self.store.slices.items())
                           if selector_matches(selector, s)]
            else:
                try:
                    since = int(resource_version)
                except ValueError:
                    raise ApiError(400, "BadRequest", "invalid resourceVersion %r" % resource_version)
                if since > self.store.version:
                    raise ApiError(504, "Timeout", "Too large resource version: %d, current: %d"
                                   % (since, self.store.version))
                initial = [(kind, clone(obj)) for version, kind, obj in self.store.history
                           if version > since and selector_matches(selector, obj)]
            self.store.watchers.append(events)
            epoch = self.store.fail_epoch
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for kind, obj in initial:
                self.chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            deadline = time.monotonic() + timeout_seconds
            while time.monotonic() < deadline:
                with self.store.lock:
                    if self.store.fail_epoch != epoch:
                        # The server went away: the stream ends mid-way.
                        self.close_connection = True
                        return
                try:
                    kind, obj = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if selector_matches(selector, obj):
                    self.chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            self.chunk(b"")
        finally:
            with self.store.lock:
                self.store.watchers.remove(events)

    # --- control -------------------------------------------------------------

    def control(self, path, query, body):
        store = self.store
        method = self.command
        document = self.json_body(body)
        if path == "/test/claims" and method == "PUT":
            metadata = document.get("metadata", {})
            with store.lock:
                store.claims[(metadata.get("namespace"), metadata.get("name"))] = document
            self.send_json(200, {})
        elif path == "/test/nodes" and method == "PUT":
            with store.lock:
                store.node_uids[document["name"]] = document["uid"]
            self.send_json(200, {})
        elif path == "/test/slices" and method == "GET":
            node = (query.get("node") or [None])[0]
            with store.lock:
                items = [clone(s) for _, s in sorted(store.slices.items())
                         if node is None or s["spec"]["nodeName"] == node]
            self.send_json(200, {"items": items})
        elif path == "/test/slices" and method == "DELETE":
            node = (query.get("node") or [""])[0]
            self.send_json(200, {"deleted": store.delete_node_slices(node)})
        elif path == "/test/fail" and method == "PUT":
            seconds = document.get("seconds")
            with store.lock:
                store.fail_until = time.monotonic() + float(seconds) if seconds is not None else float("inf")
                store.fail_epoch += 1
                store.lock.notify_all()
            self.send_json(200, {})
        elif path == "/test/hang" and method == "PUT":
            with store.lock:
                store.hanging = "watches" if document.get("watches") else "all"
            self.send_json(200, {})
        elif path == "/test/recover" and method == "PUT":
            with store.lock:
                store.fail_until = None
                store.hanging = None
                store.lock.notify_all()
            self.send_json(200, {})
        elif path == "/test/counts" and method == "GET":
            with store.lock:
                self.send_json(200, {"requests": dict(store.counts), "refused": store.refused, "held": store.held,
                                     "watching": len(store.watchers)})
        elif path == "/test/reset-counts" and method == "PUT":
            with store.lock:
                store.counts.clear()
                store.refused = 0
                store.held = 0
            self.send_json(200, {})
        else:
            raise ApiError(404, "NotFound", "no control endpoint %s %s" % (method, path))

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token-file", required=True)
    options = parser.parse_args()

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(options.cert, options.key)

    server = Server(("127.0.0.1", 0), Handler)
    server.token_file = options.token_file
    server.store = Store()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
