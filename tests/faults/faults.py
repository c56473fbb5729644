"""The fault-injection suite: the five functions as separate processes on loopback, with a real
broker and real stores of their own, under load, one fault per scenario; after each, every
accepted delivery is checked. Run by scripts/faults, which writes docs/RELIABILITY.md.

Private servers, so the shared ones are never touched:
  - RabbitMQ 3.10 (AMQP 1.0) on a node of its own (scripts/rabbitmq-node), port 5693, with a
    user whose password is a secret the logs must never show;
  - Redis on 6393, AOF with fsync on every write, with a password (a secret too);
  - the MongoDB-compatible server (secantusd-py) on 27093 with storage on disk.
The functions run from cargo's debug binaries on 18081..., behind the ingress on 18080, as
scripts/dev --processes runs them (scripts/dev-processes, from `fabrikam processes`).

Checks after every scenario (each a failure when broken):
  - every delivery that got a 202 is readable with a drone and the stage Created;
  - the drones' load is exactly their assignments (none held by nobody);
  - the dead-letter queue holds only the scenario's poison messages, each with a reason;
  - no secret appears in any process's log;
  - without a fault: no message processed twice, no AMQP connection lost, and no warning or
    error logged by any function (a session or link closed by the broker would be one).
Messages processed more than once are counted and listed with the reason the logs give.
"""
import argparse
import datetime
import http.server
import importlib.machinery
import json
import os
import pathlib
import platform
import random
import secrets
import signal
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pymongo

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
# Loaded from its file (it has no .py name); no bytecode cache is left beside it.
sys.dont_write_bytecode = True
dev_processes = importlib.machinery.SourceFileLoader(
    "dev_processes", str(SCRIPTS / "dev-processes")).load_module()

RABBIT_PORT, REDIS_PORT, MONGO_PORT = 5693, 6393, 27093
MANAGEMENT = f"http://127.0.0.1:{RABBIT_PORT + 10000}/api"
QUEUE, DEAD = "deliveries", "deliveries.deadletter"
# Every scenario's load outlasts its fault; its last seconds must all be accepted.
RECOVERED_FOR = 3
PORTS = {"DEV_FIRST_FUNCTION_PORT": "18081", "DEV_GATEWAY_PORT": "18080",
         "DEV_INTERNAL_PORT": "18090"}
# scripts/fuzz's section of the report (tests/api_fuzz/fuzz.py), kept when this suite writes it.
FUZZ_BEGIN, FUZZ_END = "<!-- api-fuzz: begin -->", "<!-- api-fuzz: end -->"
REQUEST = json.loads((ROOT / "functions/ingestion/tests/fixtures/delivery_request.json").read_text())


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def request(method, url, body=None, headers=None, timeout=10, auth=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    if auth:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, json.loads(text) if text.strip() else None
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text


def management(method, path, body=None):
    return request(method, MANAGEMENT + path, body, auth="guest:guest", timeout=30)


def run(*argv, **kw):
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, **kw)


class Servers:
    """The private broker, Redis and MongoDB-compatible server, killable and restartable."""

    def __init__(self, work):
        self.work = work
        self.rabbit_dir = work / "rabbitmq"
        self.redis_dir = work / "redis"
        self.mongo_dir = work / "mongo"
        self.redis_password = secrets.token_hex(16)
        self.amqp_password = secrets.token_hex(16)
        self.redis = self.mongo = None
        venv = pathlib.Path(os.environ.get("FABRIKAM_SERVICES_DIR",
                                           pathlib.Path.home() / ".cache/fabrikam-services"))
        self.secantusd = venv / "venv/bin/secantusd-py"

    def node(self, action):
        run(SCRIPTS / "rabbitmq-node", action, self.rabbit_dir, RABBIT_PORT)

    def start_broker(self):
        self.node("start")

    def start_redis(self):
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--dir", str(self.redis_dir), "--requirepass", self.redis_password],
            stdout=open(self.work / "redis.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_port(REDIS_PORT, "Redis")

    def start_mongo(self):
        self.mongo = subprocess.Popen(
            [str(self.secantusd), "--host", "127.0.0.1", "--port", str(MONGO_PORT),
             "--storage-path", str(self.mongo_dir), "--sync-on-commit"],
            stdout=open(self.work / "mongo.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_port(MONGO_PORT, "the MongoDB-compatible server", 60)

    def start(self):
        self.start_broker()
        # A user of its own, so its password is a secret to look for in the logs.
        ctl = ["env", f"HOME={self.rabbit_dir.resolve()}", "/usr/lib/rabbitmq/bin/rabbitmqctl",
               "-q", "-n", f"fabrikam-{RABBIT_PORT}@localhost"]
        subprocess.run(ctl + ["delete_user", "fabrikam"], capture_output=True)
        run(*ctl, "add_user", "fabrikam", self.amqp_password)
        run(*ctl, "set_permissions", "-p", "/", "fabrikam", ".*", ".*", ".*")
        for q in (QUEUE, DEAD):
            management("DELETE", f"/queues/%2F/{q}")
        run(sys.executable, SCRIPTS / "rabbitmq-queue", QUEUE,
            env={**os.environ, "RABBITMQ_MANAGEMENT_PORT": str(RABBIT_PORT + 10000)})
        # RabbitMQ 3.10 brought a quorum queue declared seconds before a kill -9 back without
        # a leader; a clean restart of the application puts the declaration on disk.
        self.node("sync")
        self.start_redis()
        self.start_mongo()

    def env(self):
        password_file = self.work / "redis-password"
        password_file.write_text(self.redis_password)
        return {
            "AMQP_URL": f"amqp://fabrikam:{self.amqp_password}@127.0.0.1:{RABBIT_PORT}",
            "AMQP_ADDRESS_PREFIX": "/amq/queue/",
            "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}",
            "REDIS_PASSWORD_FILE": str(password_file),
            "MONGODB_URI": f"mongodb://127.0.0.1:{MONGO_PORT}/?directConnection=true",
        }

    def secrets(self):
        return {"the RabbitMQ password": self.amqp_password,
                "the Redis password": self.redis_password}

    def stop(self):
        for proc in (self.redis, self.mongo):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        self.node("stop")


def wait_port(port, what, timeout=30):
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


class FlakyProxy:
    """A downstream that answers 503 to half the requests and forwards the rest."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.rng = random.Random(7)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.rng.random() < 0.5:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req = urllib.request.Request(f"http://{proxy.upstream}{self.path}", data=body,
                                             method=self.command)
                for k, v in self.headers.items():
                    if k.lower() not in ("host", "content-length", "connection"):
                        req.add_header(k, v)
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        status, payload, headers = r.status, r.read(), r.headers
                except urllib.error.HTTPError as e:
                    status, payload, headers = e.code, e.read(), e.headers
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = forward

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


class Blackhole:
    """Drops, without refusing, every packet to or from a loopback port."""

    def __init__(self, port):
        self.rules = [["INPUT", "-i", "lo", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
                      ["INPUT", "-i", "lo", "-p", "tcp", "--sport", str(port), "-j", "DROP"]]

    def __enter__(self):
        for rule in self.rules:
            run("iptables", "-I", *rule)
        return self

    def __exit__(self, *_):
        for rule in self.rules:
            subprocess.run(["iptables", "-D", *rule], capture_output=True)


class Load:
    """POSTs delivery requests through the ingress at a steady rate, recording each answer."""

    def __init__(self, gateway, rate, seconds):
        self.gateway, self.rate, self.seconds = gateway, rate, seconds
        self.results = []
        self.lock = threading.Lock()
        self.threads = []

    def post(self, at):
        body = dict(REQUEST)
        body["packageInfo"] = dict(REQUEST["packageInfo"], packageId=f"pkg-{uuid.uuid4().hex[:12]}")
        t0 = time.monotonic()
        try:
            status, answer = request("POST", f"http://{self.gateway}/api/deliveryrequests", body,
                                  {"Idempotency-Key": uuid.uuid4().hex}, timeout=30)
        except OSError as e:
            status, answer = None, str(e)
        latency = time.monotonic() - t0
        delivery = answer.get("deliveryId") if status == 202 and isinstance(answer, dict) else None
        with self.lock:
            self.results.append({"at": at, "status": status, "latency": latency, "id": delivery})

    def run(self, on_tick=None):
        start = time.monotonic()
        total = int(self.rate * self.seconds)
        for i in range(total):
            at = i / self.rate
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if on_tick:
                on_tick(time.monotonic() - start)
            t = threading.Thread(target=self.post, args=(at,), daemon=True)
            t.start()
            self.threads.append(t)
        for t in self.threads:
            t.join(40)

    def accepted(self):
        return [r["id"] for r in self.results if r["id"]]


class Timeline:
    """Actions at offsets into the load, each run once, in a thread of its own."""

    def __init__(self, actions):
        self.actions = sorted(actions, key=lambda a: a[0])
        self.done = set()
        self.threads = []
        self.errors = []

    def tick(self, now):
        for i, (at, action) in enumerate(self.actions):
            if i not in self.done and now >= at:
                self.done.add(i)
                t = threading.Thread(target=self.guard, args=(action,), daemon=True)
                t.start()
                self.threads.append(t)

    def guard(self, action):
        try:
            action()
        except Exception as e:  # reported as the scenario's failure
            self.errors.append(f"{action.__name__ if hasattr(action, '__name__') else action}: {e}")

    def join(self):
        for t in self.threads:
            t.join(180)


class Suite:
    def __init__(self, work, bin_dir):
        self.work = work
        self.servers = Servers(work)
        self.bin_dir = bin_dir
        self.system = None
        self.reports = []
        self.failures = []
        self.proxy = None

    # --- the system -------------------------------------------------------------------
    def start(self):
        log("starting the private broker, Redis and MongoDB-compatible server")
        self.servers.start()
        env = {**os.environ, **PORTS, **self.servers.env(), "LOG_FORMAT": "json",
               "RUST_LOG": "info", "DRONE_FLEET_SIZE": "20", "SHUTDOWN_GRACE_SECONDS": "15",
               "QUEUE_RETRY_DELAY_MAX_SECONDS": "5"}
        env.pop("FABRIKAM_LOCAL", None)
        self.system = dev_processes.System(self.bin_dir, env, self.work / "logs")
        log("starting the five functions as processes")
        self.system.start_all()
        self.gateway = self.system.plan["ingress"][2]
        self.mongo = pymongo.MongoClient(f"mongodb://127.0.0.1:{MONGO_PORT}/?directConnection=true",
                                         serverSelectionTimeoutMS=30000)

    def restart(self, name, sig=signal.SIGKILL, down=1.0, expect_exit=None, overrides=None):
        code = self.system.stop(name, sig)
        if expect_exit is not None and code != expect_exit:
            raise RuntimeError(f"{name} exited with {code} after {sig.name}, not {expect_exit}")
        time.sleep(down)
        self.system.start(name, overrides)
        self.system.ready(name, 120)

    def stop(self):
        if self.system:
            codes = self.system.stop_all()
            bad = {n: c for n, c in codes.items() if c != 0}
            if bad:
                self.failures.append(f"shutdown: exit codes {bad}")
        self.servers.stop()

    # --- what is checked --------------------------------------------------------------
    def log_offsets(self):
        return {p.name: p.stat().st_size for p in (self.work / "logs").glob("*.log")}

    def log_lines(self, name, offsets):
        path = self.work / "logs" / f"{name}.log"
        with open(path, "rb") as f:
            f.seek(offsets.get(path.name, 0))
            for line in f.read().decode(errors="replace").splitlines():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def queue_depth(self):
        status, q = management("GET", f"/queues/%2F/{QUEUE}")
        return (q.get("messages", 0) or 0) if status == 200 else None

    def drain(self, ids, timeout=180):
        """Waits until every accepted delivery is readable with a drone and the queue is empty."""
        delivery = self.system.address("delivery")
        pending = set(ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in list(pending):
                status, doc = request("GET", f"http://{delivery}/api/deliveries/{i}")
                if status == 200 and doc.get("droneId"):
                    pending.discard(i)
            if not pending and self.queue_depth() == 0:
                return set()
            time.sleep(1)
        return pending

    def leaked_load(self):
        """A drone's load is its assignments plus the claims it holds that never became
        one (a hold is dropped once its assignment is written; one a crash left beside
        its assignment counts once). Once the work is done, no such claim may remain."""
        db = self.mongo["dronescheduler"]
        assigned, per_drone = set(), {}
        for a in db.assignments.find({}, {"_id": 1, "droneId": 1}):
            assigned.add(a["_id"])
            per_drone[a["droneId"]] = per_drone.get(a["droneId"], 0) + 1
        leaks = []
        for d in db.drones.find():
            orphans = [h for h in d.get("holding", []) if h not in assigned]
            expected = per_drone.get(d["_id"], 0) + len(orphans)
            if d["load"] != expected:
                leaks.append(f"{d['_id']}: load {d['load']} but {per_drone.get(d['_id'], 0)} "
                             f"assignments and {len(orphans)} claims without one")
            leaks += [f"{d['_id']}: held for {h}, which has no assignment" for h in orphans]
        return leaks

    def dead_letters(self):
        status, messages = management("POST", f"/queues/%2F/{DEAD}/get",
                                      {"count": 10000, "ackmode": "ack_requeue_true",
                                       "encoding": "auto"})
        return messages if status == 200 else []

    def secrets_in_logs(self):
        found = []
        for path in (self.work / "logs").glob("*.log"):
            text = path.read_text(errors="replace")
            found += [f"{what} in {path.name}" for what, value in self.servers.secrets().items()
                      if value in text]
        return found

    def processed_twice(self, offsets):
        """Deliveries scheduled more than once, each with why, from the workflow's logs."""
        scheduled = {}
        for line in self.log_lines("workflow", offsets):
            if line.get("message") == "delivery scheduled":
                scheduled.setdefault(line.get("delivery_id"), []).append(
                    (line.get("messaging.message.id"),
                     line.get("messaging.servicebus.message.delivery_count")))
        resent = {line.get("delivery_id") for line in self.log_lines("ingestion", offsets)
                  if line.get("message") == "send failed; retrying on a new link"}
        twice = {}
        for delivery, runs in scheduled.items():
            if len(runs) < 2:
                continue
            if len({m for m, _ in runs}) > 1:
                why = "two messages for one delivery request"
            elif any((c or 1) > 1 for _, c in runs[1:]):
                why = "redelivered: the broker gave the message back"
            elif delivery in resent:
                why = ("sent twice: ingestion's send got no answer and was retried on a new "
                       "link, and both copies arrived (same message id; RabbitMQ has no "
                       "duplicate detection)")
            else:
                why = "delivered again as a first delivery, for no reason the logs give"
            twice[delivery] = why
        return twice

    def warnings(self, offsets):
        """Every WARN or ERROR line the functions logged (a session or link the broker closed,
        a settlement that failed, a retried send), as "function: message"."""
        return [f"{name}: {line.get('message')}" for name in self.system.functions
                for line in self.log_lines(name, offsets)
                if line.get("level") in ("WARN", "ERROR")]

    def connection_losses(self, offsets):
        return sum(1 for name in ("ingestion", "workflow")
                   for line in self.log_lines(name, offsets)
                   if line.get("message", "").startswith("AMQP connection lost"))

    # --- one scenario -----------------------------------------------------------------
    def scenario(self, name, fault, actions, rate=25, seconds=12, poison=(), faultless=False):
        log(f"scenario: {name}")
        offsets = self.log_offsets()
        started = time.monotonic()
        timeline = Timeline(actions)
        load = Load(self.gateway, rate, seconds)
        load.run(timeline.tick)
        timeline.join()
        for cleanup in getattr(self, "cleanups", []):
            cleanup()
        self.cleanups = []
        accepted = load.accepted()
        lost = self.drain(accepted)
        problems = list(timeline.errors)
        if lost:
            problems.append(f"{len(lost)} accepted deliveries not readable with a drone: "
                            f"{sorted(lost)[:5]}")
        delivery = self.system.address("delivery")
        wrong_stage = []
        for i in accepted:
            if i in lost:
                continue
            status, s = request("GET", f"http://{delivery}/api/deliveries/{i}/status")
            if status != 200 or s.get("stage") != "Created":
                wrong_stage.append(i)
        if wrong_stage:
            problems.append(f"{len(wrong_stage)} deliveries not in stage Created")
        leaks = self.leaked_load()
        problems += [f"leaked drone load: {leak}" for leak in leaks[:5]]
        dead = self.dead_letters()
        dead_ids = [m["properties"].get("message_id") for m in dead]
        stray = [i for i in dead_ids if i not in poison]
        if stray:
            problems.append(f"{len(stray)} messages in the dead-letter queue that are not poison")
        reasons = {}
        dead_lettered = {line.get("messaging.message.id"): line.get("reason")
                         for line in self.log_lines("workflow", offsets)
                         if line.get("message") == "message dead-lettered"}
        for m in dead:
            mid = m["properties"].get("message_id")
            deaths = (m["properties"].get("headers") or {}).get("x-death") or []
            broker_reason = deaths[0].get("reason") if deaths else None
            reasons[mid] = dead_lettered.get(mid) or broker_reason
            if not reasons[mid]:
                problems.append(f"dead letter {mid} has no reason")
        missing = [p for p in poison if p not in dead_ids]
        if missing:
            problems.append(f"poison messages not in the dead-letter queue: {missing}")
        management("DELETE", f"/queues/%2F/{DEAD}/contents")
        problems += [f"secret in a log: {s}" for s in self.secrets_in_logs()]
        twice = self.processed_twice(offsets)
        losses = self.connection_losses(offsets)
        if faultless and twice:
            problems.append(f"{len(twice)} deliveries processed twice without a fault")
        if faultless and losses:
            problems.append(f"{losses} AMQP connections lost without a fault")
        warned = self.warnings(offsets) if faultless else []
        if warned:
            problems.append(f"{len(warned)} warnings or errors logged without a fault, e.g. "
                            f"{sorted(set(warned))[:3]}")
        # The system heals by itself: once the fault is over, every request is accepted again.
        tail = [r for r in load.results if r["at"] >= seconds - RECOVERED_FOR]
        refused = [r["status"] for r in tail if r["status"] != 202]
        if refused:
            problems.append(f"not recovered: {len(refused)} of the last {len(tail)} requests "
                            f"(the load's last {RECOVERED_FOR} s) got {sorted(set(map(str, refused)))}")
        latencies = sorted(r["latency"] for r in load.results)
        statuses = {}
        for r in load.results:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        report = {
            "name": name, "fault": fault, "sent": len(load.results),
            "accepted": len(accepted), "statuses": statuses,
            "lost": len(lost), "leaked": len(leaks), "dead": len(dead),
            "poison": len(poison), "reasons": sorted(set(filter(None, reasons.values()))),
            "twice": twice, "losses": losses,
            "p50": latencies[len(latencies) // 2] if latencies else 0,
            "max": latencies[-1] if latencies else 0,
            "seconds": time.monotonic() - started, "problems": problems,
        }
        self.reports.append(report)
        verdict = "ok" if not problems else "FAILED: " + "; ".join(problems)
        log(f"  {report['accepted']}/{report['sent']} accepted, {report['lost']} lost, "
            f"{report['leaked']} leaked, {len(twice)} processed twice, {report['dead']} dead "
            f"letters: {verdict}")
        self.failures += [f"{name}: {p}" for p in problems]

    # --- the scenarios ----------------------------------------------------------------
    def kills(self):
        order = ["workflow", "delivery", "package", "dronescheduler", "ingestion"] * 2
        return [(1 + 1.3 * i, lambda n=n: self.restart(n)) for i, n in enumerate(order)]

    def sigterms(self):
        return [(3, lambda: self.restart("workflow", signal.SIGTERM, 0.5, expect_exit=0)),
                (7, lambda: self.restart("ingestion", signal.SIGTERM, 0.5, expect_exit=0))]

    def kill_server(self, which, down):
        """kill -9 of the `which` server ("redis" or "mongo"), started again on its data
        `down` seconds later."""
        def fault():
            proc = getattr(self.servers, which)
            proc.kill()
            proc.wait()
            time.sleep(down)
            getattr(self.servers, f"start_{which}")()
        return [(3, fault)]

    def kill_broker(self):
        def fault():
            self.servers.node("kill")
            time.sleep(5)
            self.servers.node("start")
        return [(3, fault)]

    def flaky_delivery(self):
        self.proxy = FlakyProxy(self.system.address("delivery"))
        self.restart("workflow", signal.SIGTERM, 0,
                     overrides={"DELIVERY_SERVICE_URL": f"http://{self.proxy.address}"})

        def restore():
            self.restart("workflow", signal.SIGTERM, 0)
            self.proxy.close()
        return restore

    def blackhole(self, port, seconds):
        def fault():
            with Blackhole(port):
                time.sleep(seconds)
        return [(2, fault)]

    def poison(self):
        ids = [f"poison-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        bodies = [("delivery", "this is not JSON"), ("explode", "{}"),
                  ("delivery", json.dumps({"deliveryId": "x"}))]

        def publish():
            for mid, (operation, payload) in zip(ids, bodies):
                status, answer = management("POST", "/exchanges/%2F/amq.default/publish", {
                    "properties": {"message_id": mid, "content_type": "application/json",
                                   "delivery_mode": 2, "headers": {"operation": operation}},
                    "routing_key": QUEUE, "payload": payload, "payload_encoding": "string"})
                if status != 200 or not answer.get("routed"):
                    raise RuntimeError(f"publishing {mid}: {status} {answer}")
        return ids, [(2, publish)]

    def run_all(self, only):
        plan = [
            ("no fault", "none", lambda: [], {"faultless": True}),
            ("kill -9 of each function in turn, twice", "each function killed and restarted 1 s later", self.kills, {"seconds": 20}),
            ("SIGTERM under load", "workflow, then ingestion, stopped gracefully and restarted", self.sigterms, {}),
            ("kill -9 of Redis", "Redis (AOF, fsync always) killed, restarted 5 s later", lambda: self.kill_server("redis", 5), {}),
            ("restart of the MongoDB-compatible server", "killed, restarted 3 s later on its storage", lambda: self.kill_server("mongo", 3), {}),
            ("kill -9 of the broker", "RabbitMQ node killed, restarted 5 s later", self.kill_broker, {"seconds": 25}),
            ("a downstream answering 5xx half the time", "the workflow's calls to delivery through a proxy that answers 503 to half", None, {}),
            ("blackhole: the broker", "packets to and from RabbitMQ dropped for 10 s (ingestion and workflow)", lambda: self.blackhole(RABBIT_PORT, 10), {"seconds": 20}),
            ("blackhole: Redis", "packets to and from Redis dropped for 10 s (delivery)", lambda: self.blackhole(REDIS_PORT, 10), {"seconds": 20}),
            ("blackhole: a downstream", "packets to and from delivery dropped for 10 s (the workflow's calls)", lambda: self.blackhole(int(self.system.address("delivery").rsplit(":", 1)[1]), 10), {"seconds": 20}),
            ("poison messages", "3 messages no handler can process, put on the queue directly", None, {}),
        ]
        for name, fault, actions, options in plan:
            if only and not any(o in name for o in only):
                continue
            if name.startswith("a downstream answering"):
                restore = self.flaky_delivery()
                self.cleanups = [restore]
                self.scenario(name, fault, [], **options)
            elif name == "poison messages":
                ids, acts = self.poison()
                self.scenario(name, fault, acts, poison=ids, **options)
            else:
                self.scenario(name, fault, actions(), **options)


def write_report(suite, path, command, elapsed):
    lines = [
        "# Reliability: the fault-injection suite",
        "",
        "Written by `scripts/faults` (tests/faults/faults.py); do not edit by hand.",
        "",
        f"- Command: `{command}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{elapsed / 60:.1f} minutes",
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "- The five functions as separate processes (debug builds) behind the ingress, on a "
        "private RabbitMQ 3.10 node (AMQP 1.0, a quorum queue dead-lettering after 10 "
        "deliveries), Redis with AOF and fsync always, and the MongoDB-compatible server "
        "(secantusd-py) on disk; each scenario POSTs delivery requests through the ingress "
        "while its fault happens, then waits for the queue to drain.",
        "",
        "Checked after every scenario: every delivery that got a 202 is readable with a drone "
        "and the stage Created; the drones' load is exactly their assignments; the dead-letter "
        "queue holds only the poison messages, each with a reason; no secret (the broker's and "
        "Redis's passwords) is in any log. Without a fault, nothing may be processed twice, "
        "no AMQP connection may drop and no function may log a warning or an error (a session "
        "or link the broker closed is one).",
        "",
        "| Scenario | Fault | Sent | 202 | Other answers | Lost | Leaked load | Dead letters "
        "(reasons) | Processed twice | POST p50 / max | Result |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in suite.reports:
        others = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()) if k != "202") or "none"
        reasons = f"{r['dead']} ({', '.join(r['reasons'])})" if r["dead"] else "0"
        result = "pass" if not r["problems"] else "FAIL: " + "; ".join(r["problems"])
        lines.append(
            f"| {r['name']} | {r['fault']} | {r['sent']} | {r['accepted']} | {others} | "
            f"{r['lost']} | {r['leaked']} | {reasons} | {len(r['twice'])} | "
            f"{r['p50'] * 1000:.0f} ms / {r['max'] * 1000:.0f} ms | {result} |")
    lines += ["", "## Processed more than once, and why", ""]
    any_twice = False
    for r in suite.reports:
        if not r["twice"]:
            continue
        any_twice = True
        why = {}
        for reason in r["twice"].values():
            why[reason] = why.get(reason, 0) + 1
        lines.append(f"- {r['name']} ({r['fault']}): "
                     + "; ".join(f"{n} {reason}" for reason, n in sorted(why.items())))
    if not any_twice:
        lines.append("- none")
    lines += ["", "Other answers are what a client sees while its fault lasts (503 with "
              "Retry-After when the broker cannot take the request or ingestion is not "
              "there: the ingress answers for it); a delivery only counts as accepted on a "
              "202, and the client retries the rest with the same Idempotency-Key. Every "
              "scenario's last " + str(RECOVERED_FOR) + " s of load must be all 202: the "
              "system heals by itself once the fault ends.",
              "",
              "A blackholed broker does not refuse anything: a send waits, the connection is "
              "probed after 1 s, found silent and reopened, and the reopening waits for "
              "the broker for up to 15 s before the request gets 503. Here the blackhole "
              "lifted first, so the requests that arrived during it waited (POST max) and "
              "were then accepted. Processing a delivery twice is harmless (each step is "
              "idempotent); the table counts it so a change in it shows.", ""]
    # The HTTP contract fuzzing's section (scripts/fuzz writes it) is kept as it was.
    existing = path.read_text() if path.exists() else ""
    begin, end = existing.find(FUZZ_BEGIN), existing.find(FUZZ_END)
    if 0 <= begin < end:
        lines += [existing[begin:end + len(FUZZ_END)], ""]
    path.write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bin_dir", type=pathlib.Path)
    parser.add_argument("--only", action="append", default=[],
                        help="run the scenarios whose name contains this (repeatable)")
    parser.add_argument("--report", type=pathlib.Path, default=ROOT / "docs/RELIABILITY.md")
    args = parser.parse_args()
    work = ROOT / "target" / "faults"
    if work.exists():
        for sub in ("redis", "mongo", "logs"):
            subprocess.run(["rm", "-rf", str(work / sub)], check=True)
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    suite = Suite(work, args.bin_dir)
    try:
        suite.start()
        suite.run_all(args.only)
    finally:
        suite.stop()
    command = "scripts/faults" + "".join(f" --only '{o}'" for o in args.only)
    if not args.only:
        write_report(suite, args.report, command, time.monotonic() - began)
        log(f"wrote {args.report}")
    if suite.failures:
        log("FAILED:\n  " + "\n  ".join(suite.failures))
        sys.exit(1)
    log(f"all {len(suite.reports)} scenarios passed in {(time.monotonic() - began) / 60:.1f} min")


if __name__ == "__main__":
    main()
