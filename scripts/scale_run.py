"""`fabrikam scale run` as a child process whose output is followed line by line: each
replica's start, readiness and exit, and each replica change of the explain log, placed on
this process's clock. tests/scale and scripts/bench-scale drive it."""
import base64
import collections
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# `t=12.345 s workflow 0→1: push activation, ...` (a change) and
# `  t=12.345 s workflow-3 started (pid ...)` / `ready 12 ms after` / `exited` / `killed`.
CHANGE = re.compile(r"^t=([\d.]+) s ([a-z0-9-]+) (\d+)→(\d+): (.*)$")
POD = re.compile(r"^\s+t=([\d.]+) s ([a-z0-9-]+)-(\d+) (started|ready|sent SIGTERM|exited|killed)")
EPOCH = re.compile(r"t=0 is (\d+) ms after the Unix epoch")
# `  t=0.012 s the host's scaler started (pid 123)` / `... exited unasked (signal: 9 ...)`
SCALER = re.compile(r"^\s+t=([\d.]+) s the host's scaler (started|exited unasked)(?: \(pid (\d+)\))?")
# `==> the host's scaler: gRPC 127.0.0.1:1234 (KEDA's calls), reports to http://127.0.0.1:5678; ...`
SCALER_AT = re.compile(r"^==> the host's scaler: gRPC (\S+) .*reports to (http://[^;\s]+)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ScaleRun:
    """The run on free ports, with `args` (shortened timings and the like)."""

    def __init__(self, bin_dir, log_dir, args, env=None):
        self.ingress, self.internal = free_port(), free_port()
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for old in self.log_dir.glob("*.log"):
            old.unlink()
        env = dict(env or os.environ, DEV_GATEWAY_PORT=str(self.ingress),
                   DEV_INTERNAL_PORT=str(self.internal))
        self.proc = subprocess.Popen(
            [str(Path(bin_dir) / "fabrikam"), "scale", "run", "--bin-dir", str(bin_dir),
             "--log-dir", str(self.log_dir)] + list(args),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.epoch = None  # seconds since the Unix epoch at the run's t=0
        self.changes = []  # (t, function, from, to, why)
        self.pods = []  # (t, function, number, what)
        self.scaler = []  # (t, "started" or "exited unasked", pid or None)
        self.scaler_url = None  # its HTTP side: /metrics, /readyz
        self.processes = collections.Counter()
        self.most = collections.Counter()
        self.lock = threading.Condition()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self.lock:
                self.lines.append(line)
                if self.epoch is None and (m := EPOCH.search(line)):
                    self.epoch = int(m.group(1)) / 1000
                if m := SCALER.match(line):
                    t, what, pid = m.groups()
                    self.scaler.append((float(t), what, int(pid) if pid else None))
                if m := SCALER_AT.match(line):
                    self.scaler_url = m.group(2)
                if m := CHANGE.match(line):
                    t, name, a, b, why = m.groups()
                    self.changes.append((float(t), name, int(a), int(b), why))
                if m := POD.match(line):
                    t, name, number, what = m.groups()
                    self.pods.append((float(t), name, int(number), what))
                    if what == "started":
                        self.processes[name] += 1
                    elif what in ("exited", "killed"):
                        self.processes[name] -= 1
                    self.most[name] = max(self.most[name], self.processes[name])
                self.lock.notify_all()

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{what} within {timeout} s; {self.said()}")
                self.lock.wait(min(left, 0.5))

    def said(self, lines=40):
        """The run's last lines, for a failure's message: what it decided and why."""
        with self.lock:
            return "the run said:\n" + "\n".join(self.lines[-lines:])

    def started(self, timeout=60):
        self.wait_for(lambda: self.epoch is not None, timeout, "the run started")

    def saw(self, pattern):
        with self.lock:
            return any(re.search(pattern, line) for line in self.lines)

    def idle(self, name=None):
        if name is not None:
            return self.processes[name] == 0
        return all(n == 0 for n in self.processes.values())

    def clock(self, t):
        """A time of the run's log on this process's clock (seconds since the epoch)."""
        return self.epoch + t

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def redeclare_queue(queue, management="http://127.0.0.1:15672/api"):
    """Declares `queue` again, so its tick is the broker's current `quorum_tick_interval`
    (a quorum queue keeps the one it was declared with, and the shared broker's queue may be
    older than the setting a report quotes: its counts then lag by up to 5 s). Emptied
    first; its messages are nothing but an earlier run's."""
    quoted = f"{management}/queues/%2F/{queue}"
    for method, url in (("DELETE", f"{quoted}/contents"), ("DELETE", quoted)):
        req = urllib.request.Request(url, method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
    subprocess.run([sys.executable, str(ROOT / "scripts/rabbitmq-queue"), queue], check=True,
                   stdout=subprocess.DEVNULL)


def completions(log_dir, pattern="workflow-*.log"):
    """Every message the replicas logged as completed, from their JSON log files under
    `log_dir` matching `pattern`: (file name, message id, seconds since the epoch), in
    each file's order."""
    done = []
    for path in sorted(Path(log_dir).glob(pattern)):
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("message") == "message completed":
                stamp = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
                done.append((path.name, event.get("messaging.message.id"), stamp.timestamp()))
    return done
