"""Scale-in during slow handlers, on real processes (`fabrikam scale run`): the workflow's
call to delivery is held 20 s by a proxy (`--callee delivery=...`), so every message is
locked in a running handler long after the queue shows it gone. The load stops while the
handlers run.

  - With the host's scaler, the replicas report what they hold; KEDA stays active and the
    workflow is scaled in only after the last handler settled.
  - With `azure-servicebus` alone (`--without-scaler`, what KEDA does while the scaler is
    down), the queue looks empty, and the cooldown scales the workflow in mid-work: the
    case the scaler exists for. The replica's drain (it stops receiving and finishes what
    it holds within its grace of handler timeout + 10 s) still settles every message.

Either way: every message completed exactly once, none abandoned, dead-lettered or released
because of the scale-in. Needs what tests/scale/test_local_scale.py needs.
"""
import base64
import http.client
import http.server
import json
import os
import sys
import threading
import time
import unittest
import urllib.request
import uuid
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from scale_run import ScaleRun, completions  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
REQUEST = (ROOT / "functions/ingestion/tests/fixtures/delivery_request.json").read_bytes()
MANAGEMENT = "http://127.0.0.1:15672/api"
QUEUE = "deliveries"  # the dev profile's rendered queue
HANDLER_SECONDS = 20
MESSAGES = 8
POLLING, COOLDOWN, HPA_SYNC = 1, 5, 2
# Settlement problems a scale-in could cause, as the runtime logs them.
UNSETTLED = ("message abandoned for redelivery", "message dead-lettered",
             "lock lost before settlement; the message will be redelivered")


class SlowCallee:
    """An HTTP proxy that holds every request `delay` seconds, then forwards it to `target`
    (set once the run says where its interceptor is)."""

    def __init__(self, delay):
        self.delay, self.target = delay, None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(proxy.delay)
                conn = http.client.HTTPConnection(*proxy.target, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def post(port, key):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/deliveryrequests",
                                 data=REQUEST, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Idempotency-Key", key)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status


def unsettled(log_dir):
    """Each workflow log line that says a message was not completed."""
    found = []
    for path in Path(log_dir).glob("workflow-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") in UNSETTLED:
                found.append(f"{path.name}: {event.get('message')}")
    return found


class SlowHandlers:
    """One run with slow handlers; the subclasses say whether the scaler is in it."""
    ARGS = []
    LOGS = None

    @classmethod
    def setUpClass(cls):
        # What earlier suites left on the shared queue would wake the workflow.
        purge = urllib.request.Request(f"{MANAGEMENT}/queues/%2F/{QUEUE}/contents",
                                       method="DELETE")
        purge.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        urllib.request.urlopen(purge, timeout=10).close()
        cls.callee = SlowCallee(HANDLER_SECONDS)
        env = dict(os.environ, LOG_FORMAT="json", RUST_LOG="info",
                   AMQP_URL="amqp://127.0.0.1:5672", AMQP_ADDRESS_PREFIX="/amq/queue/",
                   REDIS_URL="redis://127.0.0.1:6379",
                   MONGODB_URI="mongodb://127.0.0.1:27017/?directConnection=true",
                   # The workflow's calls may take the proxy's 20 s and more.
                   DOWNSTREAM_TIMEOUT_MS=str((HANDLER_SECONDS + 10) * 1000))
        cls.scale = ScaleRun(BIN, cls.LOGS, ["--polling-seconds", str(POLLING),
                                             "--cooldown-seconds", str(COOLDOWN),
                                             "--hpa-sync-seconds", str(HPA_SYNC),
                                             "--callee", f"delivery={cls.callee.url}"]
                             + cls.ARGS, env)
        cls.scale.started()
        cls.callee.target = ("127.0.0.1", cls.scale.internal)

    @classmethod
    def tearDownClass(cls):
        code = cls.scale.stop()
        cls.callee.close()
        assert code == 0, f"the run exited with {code}"

    def run_slow_load(self):
        """Posts the load at zero and waits until the workflow is back at zero; returns
        (the run's time of its scale-in, the last completion on the run's clock)."""
        run = self.scale
        run.wait_for(lambda: run.idle("workflow"), 60, "the workflow at zero")
        keys = [f"slow-handlers-{uuid.uuid4()}" for _ in range(MESSAGES)]
        self.assertTrue(all(post(run.ingress, k) == 202 for k in keys))
        posted = time.time() - run.epoch
        run.wait_for(lambda: not run.idle("workflow"), 60, "the workflow woke")
        run.wait_for(lambda: any(f == "workflow" and b == 0 and t > posted
                                 for t, f, _, b, _ in run.changes),
                     HANDLER_SECONDS + 90, "the workflow scaled in")
        run.wait_for(lambda: run.idle("workflow"), 150, "the workflow's replicas exited")
        scale_in = min(t for t, f, _, b, _ in run.changes if f == "workflow" and b == 0
                       and t > posted)
        done = [(message, at) for _, message, at in completions(self.LOGS)]
        counts = {}
        for message, _ in done:
            counts[message] = counts.get(message, 0) + 1
        self.assertEqual(len(counts), MESSAGES, done)
        self.assertEqual({m: n for m, n in counts.items() if n > 1}, {}, "completed twice")
        self.assertEqual(unsettled(self.LOGS), [])
        last = max(at for _, at in done) - run.epoch
        print(f"\n  {type(self).__name__}: posted at t={posted:.1f} s, workflow scaled in at "
              f"t={scale_in:.1f} s, last handler settled at t={last:.1f} s", file=sys.stderr)
        return scale_in, last


class WithTheScaler(SlowHandlers, unittest.TestCase):
    LOGS = ROOT / "target/scale-test-slow"

    def test_the_workflow_stays_until_its_last_handler_settled(self):
        scale_in, last = self.run_slow_load()
        self.assertGreater(scale_in, last,
                           f"scaled in at t={scale_in:.1f} s, the last handler settled at "
                           f"t={last:.1f} s")


class WithoutTheScaler(SlowHandlers, unittest.TestCase):
    LOGS = ROOT / "target/scale-test-slow-without"
    ARGS = ["--without-scaler"]

    def test_the_cooldown_scales_in_mid_work_and_the_drain_loses_nothing(self):
        scale_in, last = self.run_slow_load()
        self.assertLess(scale_in, last,
                        f"scaled in at t={scale_in:.1f} s, after the last handler settled at "
                        f"t={last:.1f} s: the queue's count alone kept it")
        self.assertTrue(self.scale.saw(r"workflow-\d+ exited \(exit status: 0\) \d+ ms after SIGTERM"))


if __name__ == "__main__":
    unittest.main()
