"""`fabrikam scale run` (what `scripts/dev --scale` runs) on real processes, with short
timings: every function idles at zero, a request at zero is held and answered, the workflow
wakes on the queue's depth, everything goes back to zero after the cooldown, and a load that
takes the workflow from 0 to 3 and back loses nothing and handles nothing twice.

Needs the debug binaries (cargo build of the host and the functions) and the servers of
scripts/services (RabbitMQ with its management API, Redis, the MongoDB-compatible server).
Run by scripts/test; on its own:
    python3 -m unittest discover -s tests/scale
"""
import base64
import collections
import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
LOGS = ROOT / "target/scale-test"
MANAGEMENT = "http://127.0.0.1:15672/api"
QUEUE = "deliveries"  # the dev profile's rendered queue
REQUEST = json.loads((ROOT / "functions/ingestion/tests/fixtures/delivery_request.json").read_text())
POLLING, COOLDOWN, HPA_SYNC = 1, 12, 2
LOAD = 1500


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def management(method, path):
    req = urllib.request.Request(f"{MANAGEMENT}{path}", method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def call(method, url, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Run:
    """The scale run as a child process, its output followed line by line: each replica's
    start and exit, and each replica change of the explain log."""

    def __init__(self):
        self.ingress, self.internal = free_port(), free_port()
        env = dict(os.environ, DEV_GATEWAY_PORT=str(self.ingress),
                   DEV_INTERNAL_PORT=str(self.internal), LOG_FORMAT="json", RUST_LOG="info",
                   AMQP_URL="amqp://127.0.0.1:5672", AMQP_ADDRESS_PREFIX="/amq/queue/",
                   REDIS_URL="redis://127.0.0.1:6379",
                   MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true")
        for old in LOGS.glob("*.log"):
            old.unlink()
        self.proc = subprocess.Popen(
            [str(BIN / "fabrikam"), "scale", "run", "--bin-dir", str(BIN),
             "--log-dir", str(LOGS), "--polling-seconds", str(POLLING),
             "--cooldown-seconds", str(COOLDOWN), "--hpa-sync-seconds", str(HPA_SYNC)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.processes = collections.Counter()
        self.most = collections.Counter()
        self.lock = threading.Condition()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self.lock:
                self.lines.append(line)
                m = re.search(r" ([a-z]+)-\d+ (started|exited|killed)", line)
                if m:
                    name, what = m.groups()
                    self.processes[name] += 1 if what == "started" else -1
                    self.most[name] = max(self.most[name], self.processes[name])
                self.lock.notify_all()

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"{what} within {timeout} s; the run said:\n{tail}")
                self.lock.wait(min(left, 0.5))

    def saw(self, pattern):
        return any(re.search(pattern, line) for line in self.lines)

    def idle(self):
        return all(n == 0 for n in self.processes.values())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def completed_messages():
    """Each message id the workflow's replicas logged as completed, with how often."""
    seen = collections.Counter()
    for path in LOGS.glob("workflow-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "message completed":
                seen[event.get("messaging.message.id")] += 1
    return seen


class LocalScaleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # What earlier suites left on the shared queue would wake the workflow.
        management("DELETE", f"/queues/%2F/{QUEUE}/contents")
        cls.scale = Run()
        cls.scale.wait_for(lambda: cls.scale.saw("scaling locally"), 60, "the run started")

    @classmethod
    def tearDownClass(cls):
        code = cls.scale.stop()
        assert code == 0, f"the run exited with {code}"

    def _post(self, key):
        data = json.dumps(REQUEST).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.scale.ingress}/api/deliveryrequests", data=data,
            method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Idempotency-Key", key)
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())

    def readable(self, delivery_id, timeout=60):
        url = f"http://127.0.0.1:{self.scale.internal}/api/deliveries/{delivery_id}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _ = call("GET", url)
            if status == 200:
                return True
            time.sleep(0.2)
        return False

    def test_1_idle_functions_run_no_process(self):
        time.sleep(2 * POLLING + 1)
        self.assertTrue(self.scale.idle(), self.scale.processes)
        self.assertEqual(sum(self.scale.most.values()), 0, "nothing started while idle")

    def test_2_a_request_at_zero_is_held_then_answered_and_the_workflow_wakes(self):
        status, body = self._post(f"scale-test-one-{uuid.uuid4()}")
        self.assertEqual(status, 202)
        self.assertTrue(self.scale.saw(r"ingestion 0→1: push activation"))
        self.scale.wait_for(lambda: self.scale.saw(r"workflow 0→1: activation, ActiveMessageCount \d+ >"),
                          30, "the workflow woke on the queue's depth")
        self.assertTrue(self.readable(body["deliveryId"]), "the delivery became readable")

    def test_3_after_the_cooldown_every_function_is_back_at_zero(self):
        self.scale.wait_for(self.scale.idle, 120, "every function back at 0")
        for name in ("ingestion", "workflow", "package", "dronescheduler", "delivery"):
            self.assertTrue(self.scale.saw(rf"{name} 1→0: cooldown"), name)

    def test_4_a_load_takes_the_workflow_to_three_and_back_losing_nothing(self):
        before = completed_messages()
        keys = [f"scale-test-load-{uuid.uuid4()}" for _ in range(LOAD)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(self._post, keys))
        self.assertTrue(all(status == 202 for status, _ in answers))
        self.scale.wait_for(lambda: self.scale.most["workflow"] >= 3, 120, "the workflow at 3")
        self.scale.wait_for(self.scale.idle, 180, "every function back at 0 after the load")
        self.assertEqual(self.scale.most["workflow"], 3, "maxReplicaCount 3")
        # Nothing lost: every delivery readable (delivery wakes from zero for it).
        ids = [body["deliveryId"] for _, body in answers]
        missing = [i for i in ids if not self.readable(i, timeout=30)]
        self.assertEqual(missing, [])
        # Nothing handled twice: each message completed once across all replicas.
        after = completed_messages()
        new = {m: n - before.get(m, 0) for m, n in after.items() if n > before.get(m, 0)}
        self.assertEqual(len(new), LOAD)
        twice = {m: n for m, n in new.items() if n > 1}
        self.assertEqual(twice, {})
        self.scale.wait_for(self.scale.idle, 120, "every function back at 0 after the reads")


if __name__ == "__main__":
    unittest.main()
