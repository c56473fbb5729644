"""`fabrikam scale run` (what `scripts/dev --scale` runs) on real processes, with short
timings: every function idles at zero, a request at zero is held and answered, the workflow
wakes through the host's scaler (started by the run, called over KEDA's gRPC contract),
everything goes back to zero after the cooldown, a load that takes the workflow from 0
to 3 and back loses nothing and handles nothing twice, and neither does a load during which
the scaler is killed -9 (the run starts it again, as its Deployment would).

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
import signal
import sys
import time
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from scale_run import ScaleRun, completions  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
LOGS = ROOT / "target/scale-test"
MANAGEMENT = "http://127.0.0.1:15672/api"
QUEUE = "deliveries"  # the dev profile's rendered queue
REQUEST = json.loads((ROOT / "functions/ingestion/tests/fixtures/delivery_request.json").read_text())
POLLING, COOLDOWN, HPA_SYNC = 1, 12, 2
LOAD = 1500
KILLED_LOAD = 600


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


def completed_messages():
    """Each message id the workflow's replicas logged as completed, with how often."""
    return collections.Counter(message for _, message, _ in completions(LOGS))


class LocalScaleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # What earlier suites left on the shared queue would wake the workflow.
        management("DELETE", f"/queues/%2F/{QUEUE}/contents")
        env = dict(os.environ, LOG_FORMAT="json", RUST_LOG="info",
                   AMQP_URL="amqp://127.0.0.1:5672", AMQP_ADDRESS_PREFIX="/amq/queue/",
                   REDIS_URL="redis://127.0.0.1:6379",
                   MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true")
        cls.scale = ScaleRun(BIN, LOGS, ["--polling-seconds", str(POLLING),
                                         "--cooldown-seconds", str(COOLDOWN),
                                         "--hpa-sync-seconds", str(HPA_SYNC)], env)
        cls.scale.started()

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

    def assert_each_handled_once(self, answers, before):
        """Nothing lost: every accepted delivery readable (delivery wakes from zero for it).
        Nothing handled twice: each new message completed once across all replicas, where
        `before` is what the replicas had completed before the load."""
        ids = [body["deliveryId"] for _, body in answers]
        missing = [i for i in ids if not self.readable(i, timeout=30)]
        self.assertEqual(missing, [])
        after = completed_messages()
        new = {m: n - before.get(m, 0) for m, n in after.items() if n > before.get(m, 0)}
        self.assertEqual(len(new), len(answers))
        self.assertEqual({m: n for m, n in new.items() if n > 1}, {}, "completed twice")

    def test_1_idle_functions_run_no_process(self):
        time.sleep(2 * POLLING + 1)
        # The run's log in the message: a process found running here once (not reproduced)
        # left no trace of what woke it.
        self.assertTrue(self.scale.idle(), f"{self.scale.processes}; {self.scale.said()}")
        self.assertEqual(sum(self.scale.most.values()), 0,
                         f"nothing started while idle; {self.scale.said()}")

    def test_2_a_request_at_zero_is_held_then_answered_and_the_workflow_wakes(self):
        status, body = self._post(f"scale-test-one-{uuid.uuid4()}")
        self.assertEqual(status, 202)
        self.assertTrue(self.scale.saw(r"ingestion 0→1: push activation"))
        # Woken through the host's scaler (KEDA's gRPC contract): pushed on StreamIsActive,
        # or seen active by the loop tick's IsActive, whichever came first.
        self.scale.wait_for(lambda: self.scale.saw(
            r"workflow 0→1: (push activation, the host's scaler is active|activation, backlog \+ in flight \d+ > 0)"),
            30, "the workflow woke through the host's scaler")
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
        self.assert_each_handled_once(answers, before)
        self.scale.wait_for(self.scale.idle, 120, "every function back at 0 after the reads")

    def test_5_the_scaler_killed_under_load_loses_nothing_and_comes_back(self):
        before = completed_messages()
        first = [pid for _, what, pid in self.scale.scaler if what == "started"]
        self.assertEqual(len(first), 1, self.scale.scaler)
        keys = [f"scale-test-scaler-down-{uuid.uuid4()}" for _ in range(KILLED_LOAD)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            posting = pool.map(self._post, keys)
            self.scale.wait_for(lambda: not self.scale.idle("workflow"), 60, "the workflow woke")
            os.kill(first[0], signal.SIGKILL)  # as a node lost under it
            answers = list(posting)
        self.assertTrue(all(status == 202 for status, _ in answers))
        self.scale.wait_for(
            lambda: [w for _, w, _ in self.scale.scaler] == ["started", "exited unasked", "started"],
            30, "the scaler started again")
        # KEDA's calls fail meanwhile: the azure-servicebus trigger and the fallback carry
        # the workflow. Nothing lost, nothing handled twice.
        self.scale.wait_for(self.scale.idle, 180, "every function back at 0 after the load")
        self.assert_each_handled_once(answers, before)
        # It came back: the new process answers KEDA and hears the replicas again.
        with urllib.request.urlopen(f"{self.scale.scaler_url}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        self.assertGreater(metric_sum(metrics, "scaler_grpc_calls_total"), 0, metrics)
        self.assertGreater(metric_sum(metrics, "scaler_reports_total"), 0, metrics)
        self.scale.wait_for(self.scale.idle, 120, "every function back at 0 after the reads")


def metric_sum(text, name):
    """The sum of every sample of the metric `name` in Prometheus' text format."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


if __name__ == "__main__":
    unittest.main()
