"""Adding a function as a user would: in a scratch copy of the workspace, `fabrikam new`
creates an HTTP function and a queue function; only the new crates, the registry and the
environments' inputs change by hand; `scripts/generate` rewrites the generated files; the
new functions' own tests pass; `fabrikam dev` serves the HTTP one through its gateway; and
both are in the rendered manifests and the infra function list.

The copy builds into this workspace's target directory (its own crates get their own
artifacts there; the third-party ones are shared), so it costs the workspace's crates, not
a whole build. It overwrites target/debug/fabrikam, so scripts/test runs it last.
"""

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run(*args, cwd, env=None, check=True):
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


class NewFunction(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="fabrikam-scaffold-")
        cls.copy = pathlib.Path(cls.tmp.name) / "workspace"
        files = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout
        for name in filter(None, files.split("\0")):
            source = ROOT / name
            if source.is_file():
                target = cls.copy / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        cls.env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target"))
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
        run(*git, "init", "--quiet", cwd=cls.copy)
        run(*git, "add", "--all", cwd=cls.copy)
        run(*git, "commit", "--quiet", "-m", "before", cwd=cls.copy)

        cls.fabrikam = str(ROOT / "target" / "debug" / "fabrikam")
        run("cargo", "build", "--locked", "--quiet", "-p", "host", cwd=ROOT)
        cls.new_http = run(cls.fabrikam, "new", "hello", "--http", "--workspace", str(cls.copy), cwd=ROOT)
        cls.new_queue = run(cls.fabrikam, "new", "tick", "--queue", "--workspace", str(cls.copy), cwd=ROOT)
        cls.changed_by_hand = sorted(run("git", "status", "--porcelain", "--untracked-files=all",
                                         cwd=cls.copy).stdout.split("\n"))
        run("scripts/generate", cwd=cls.copy, env=cls.env)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_only_the_new_crates_the_registry_and_the_inputs_change_by_hand(self):
        paths = set()
        for line in filter(None, self.changed_by_hand):
            path = line[3:]
            paths.add("/".join(path.split("/")[:2]) if path.startswith("functions/") else path)
        self.assertEqual(sorted(paths), ["functions/hello", "functions/tick", "keda/input/dev.json",
                                         "keda/input/prod.json", "registry/Cargo.toml"])
        registry = (self.copy / "registry" / "Cargo.toml").read_text()
        self.assertIn('hello = { path = "../functions/hello" }', registry)
        self.assertIn('tick = { path = "../functions/tick" }', registry)

    def test_a_name_that_exists_or_cannot_be_a_function_is_refused(self):
        again = run(self.fabrikam, "new", "hello", "--http", "--workspace", str(self.copy), cwd=ROOT, check=False)
        self.assertEqual(again.returncode, 1)
        self.assertIn("already exists", again.stderr)
        bad = run(self.fabrikam, "new", "Hello", "--queue", "--workspace", str(self.copy), cwd=ROOT, check=False)
        self.assertIn("cannot name a function", bad.stderr)
        neither = run(self.fabrikam, "new", "x", "--workspace", str(self.copy), cwd=ROOT, check=False)
        self.assertEqual(neither.returncode, 2)

    def test_the_new_functions_pass_their_tests_and_the_workspaces_checks(self):
        result = run("cargo", "test", "--locked", "-p", "hello", "-p", "tick", cwd=self.copy, env=self.env)
        self.assertIn("test result: ok", result.stdout)
        run("cargo", "fmt", "--check", "-p", "hello", "-p", "tick", cwd=self.copy, env=self.env)
        run("cargo", "clippy", "--locked", "-p", "hello", "-p", "tick", "--all-targets", "--",
            "-D", "warnings", cwd=self.copy, env=self.env)

    def test_both_appear_in_the_manifests_and_the_infra_function_list(self):
        hello = list(yaml.safe_load_all((self.copy / "keda" / "dev" / "hello.yaml").read_text()))
        kinds = {o["kind"] for o in hello}
        self.assertTrue({"Deployment", "Service", "InterceptorRoute", "ScaledObject"} <= kinds, kinds)
        tick = list(yaml.safe_load_all((self.copy / "keda" / "dev" / "tick.yaml").read_text()))
        scaled = next(o for o in tick if o["kind"] == "ScaledObject")
        self.assertEqual(scaled["spec"]["triggers"][0]["metadata"]["queueName"], "tick")
        infra = json.loads((self.copy / "infra" / "functions.json").read_text())
        self.assertIn("hello", [f["name"] for f in infra["functions"]])
        self.assertIn("tick", infra["queues"])
        self.assertIn(["tick", "Receiver"], [[r["function"], r["role"]] for r in infra["queueRoles"]])
        check = run(self.fabrikam, "manifests", "--profile", "prod", "--check", cwd=self.copy, check=False)
        self.assertEqual(check.returncode, 0, check.stderr)

    def test_the_new_http_function_has_its_openapi_document(self):
        hello = json.loads((self.copy / "docs" / "openapi" / "hello.json").read_text())
        self.assertEqual(hello["paths"]["/api/hello/{id}"]["get"]["operationId"], "greetHello")
        self.assertIn("/openapi.json", hello["paths"])
        self.assertFalse((self.copy / "docs" / "openapi" / "tick.json").exists(),
                         "a queue function has no HTTP API of its own to document")
        check = run(self.fabrikam, "openapi", "--check", cwd=self.copy, check=False)
        self.assertEqual(check.returncode, 0, check.stderr)

    def test_fabrikam_dev_serves_the_new_function_through_its_gateway(self):
        env = dict(self.env, LOG_FORMAT="json", DEV_GATEWAY_PORT="0", DEV_INTERNAL_PORT="0",
                   DEV_FIRST_FUNCTION_PORT="0")
        # scripts/generate built the copy's host into the shared target directory.
        process = subprocess.Popen([self.fabrikam, "dev"], cwd=self.copy, env=env,
                                   stdout=subprocess.PIPE, text=True)
        try:
            internal = None
            deadline = time.time() + 60
            while internal is None and time.time() < deadline:
                line = process.stdout.readline()
                if not line:
                    break
                if "internal gateway listening" in line:
                    internal = json.loads(line)["addr"]
            self.assertIsNotNone(internal, "fabrikam dev did not start")
            with urllib.request.urlopen(f"http://{internal}/api/hello/world", timeout=5) as r:
                self.assertEqual(json.loads(r.read())["message"], "hello world")
        finally:
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    unittest.main()
