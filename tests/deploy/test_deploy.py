"""The deploy path's steps that need no Azure: scripts/deploy's arguments, its render step
from a sample of infra's outputs (infra/tests/sample/dev.outputs.json), two developer
environments (scripts/dev-env) rendered side by side, and the publication of a rendering to
the GitOps branch (scripts/publish-gitops) Flux reads.

Needs the images built (target/images/images.json, scripts/images): the renderings name
them by digest. Run by scripts/test; each rendering also passes scripts/check-manifests
--pinned, which the scripts run themselves.
"""

import json
import pathlib
import subprocess
import unittest

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "infra" / "tests" / "sample" / "dev.outputs.json"


def run(*args):
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True)


def objects(folder):
    out = subprocess.run(["kubectl", "kustomize", str(folder)], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def output(name):
    return json.loads(SAMPLE.read_text())[name]["value"]


class Arguments(unittest.TestCase):
    def assert_usage(self, result, message):
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(message, result.stderr)
        self.assertIn("usage: scripts/", result.stderr)

    def test_deploy_refuses_bad_arguments_with_usage(self):
        cases = [
            ((), "the environment must be dev or prod"),
            (("staging", "rg", "westeurope"), "the environment must be dev or prod"),
            (("dev", "--only", "build"), "unknown step build"),
            (("dev", "rg"), "give both RESOURCE_GROUP and LOCATION, or neither"),
            (("dev", "--only", "infra"), "the infra and cluster steps need RESOURCE_GROUP and LOCATION"),
            (("dev",), "the infra and cluster steps need RESOURCE_GROUP and LOCATION"),
            (("dev", "--only"), "--only needs steps"),
            (("dev", "--force"), "unknown option --force"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.assert_usage(run("scripts/deploy", *args), message)

    def test_a_step_without_what_it_reads_says_which_step_comes_first(self):
        result = run("scripts/deploy", "dev", "--only", "render", "--outputs", "infra/out/none.json")
        self.assertEqual(result.returncode, 1)
        self.assertIn("run the infra step first", result.stderr)

    def test_dev_env_refuses_bad_arguments_with_usage(self):
        cases = [
            ((), "the first argument must be create or delete"),
            (("start", "alice"), "the first argument must be create or delete"),
            (("create", "Alice"), "NAME must be a DNS label"),
            (("create", "a" * 21), "NAME must be a DNS label"),
            (("delete", "alice"), "delete needs RESOURCE_GROUP"),
            (("create", "alice", "rg", "rg2"), "one RESOURCE_GROUP"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                self.assert_usage(run("scripts/dev-env", *args), message)


class Render(unittest.TestCase):
    """scripts/deploy dev --only render, from the sample outputs: every id, name and queue in
    what would be applied comes from that file, every image is the digest built."""

    @classmethod
    def setUpClass(cls):
        result = run("scripts/deploy", "dev", "--only", "render", "--outputs", str(SAMPLE))
        if result.returncode != 0:
            raise AssertionError(f"scripts/deploy --only render failed:\n{result.stdout}\n{result.stderr}")
        cls.objects = objects(ROOT / "target" / "deploy" / "dev")
        cls.input = json.loads((ROOT / "target" / "deploy" / "dev.input.json").read_text())
        cls.images = {i["function"]: i for i in
                      json.loads((ROOT / "target" / "images" / "images.json").read_text())["images"]}

    def kind(self, kind):
        return [o for o in self.objects if o["kind"] == kind]

    def test_identities_vaults_and_tenant_come_from_the_outputs(self):
        identities = {f["name"]: f for f in output("functionIdentities")}
        accounts = {o["metadata"]["name"]: o for o in self.kind("ServiceAccount")}
        # Each function's identity, and the queue functions' scaler's own.
        self.assertEqual(accounts.pop("fabrikam-scaler")["metadata"]["annotations"]["azure.workload.identity/client-id"],
                         output("scalerClientId"))
        self.assertEqual(sorted(accounts), sorted(identities))
        for name, identity in identities.items():
            self.assertEqual(accounts[name]["metadata"]["annotations"]["azure.workload.identity/client-id"],
                             identity["clientId"])
        for spc in self.kind("SecretProviderClass"):
            name = spc["metadata"]["name"].removesuffix("-secrets")
            self.assertEqual(spc["spec"]["parameters"]["keyvaultName"], identities[name]["keyVault"])
            self.assertEqual(spc["spec"]["parameters"]["clientID"], identities[name]["clientId"])
            self.assertEqual(spc["spec"]["parameters"]["tenantId"], output("tenantId"))
        for ta in self.kind("TriggerAuthentication"):
            self.assertEqual(ta["spec"]["podIdentity"]["identityId"], output("kedaClientId"))

    def test_the_queue_namespace_and_hosts_come_from_the_outputs(self):
        # kube-system holds only managed Prometheus's settings (cluster.yaml).
        self.assertEqual({o["metadata"]["namespace"] for o in self.objects
                          if o["metadata"].get("namespace") not in (None, "kube-system")},
                         {output("kubernetesNamespace")})
        self.assertEqual({o["kind"] for o in self.objects if o["metadata"].get("namespace") == "kube-system"},
                         {"ConfigMap"})
        ingress = self.kind("Ingress")[0]
        self.assertEqual(ingress["spec"]["rules"][0]["host"], output("ingressHostName"))
        self.assertEqual(ingress["metadata"]["annotations"]["kubernetes.azure.com/tls-cert-keyvault-uri"],
                         output("ingressCertificateUri"))
        lb = self.kind("NginxIngressController")[0]["spec"]["loadBalancerAnnotations"]
        self.assertEqual(lb["service.beta.kubernetes.io/azure-load-balancer-ipv4"], output("ingressPrivateIp"))
        self.assertEqual(lb["service.beta.kubernetes.io/azure-load-balancer-internal-subnet"], output("ingressSubnetName"))
        for policy in (o for o in self.kind("NetworkPolicy") if o["metadata"]["name"].endswith("-egress-azure")):
            self.assertIn(output("privateEndpointsPrefix"), [t["ipBlock"]["cidr"] for t in policy["spec"]["egress"][0]["to"]])
        queues = {t["metadata"]["queueName"] for o in self.kind("ScaledObject") for t in o["spec"]["triggers"]
                  if t["type"] == "azure-servicebus"}
        self.assertEqual(queues, set(output("queueNames")))
        envs = {e["name"]: e["value"] for d in self.kind("Deployment")
                for e in d["spec"]["template"]["spec"]["containers"][0]["env"] if "value" in e}
        self.assertEqual(envs["SERVICEBUS_NAMESPACE"], output("serviceBusNamespace"))
        self.assertEqual(envs["REDIS_URL"], f"rediss://{output('redisHost')}:6380")
        self.assertEqual(self.input["tenantId"], output("tenantId"))

    def test_images_are_the_built_digests_in_the_outputs_registry(self):
        for d in self.kind("Deployment"):
            # The scaler's image is built as `scaler` (its binary's name), named fabrikam-scaler.
            name = d["metadata"]["name"].removeprefix("fabrikam-")
            image = self.images[name]
            self.assertEqual(d["spec"]["template"]["spec"]["containers"][0]["image"],
                             f"{output('registryLoginServer')}/{image['name']}:{image['tag']}@{image['digest']}")

    def test_no_placeholder_id_survives(self):
        placeholders = json.loads((ROOT / "keda" / "input" / "dev.json").read_text())
        ids = {placeholders["tenantId"], placeholders["kedaClientId"], placeholders["imageRegistry"]}
        ids |= {f["clientId"] for f in placeholders["functions"].values()}
        # A function without secrets (workflow) has no key vault.
        ids |= {f["keyVault"] for f in placeholders["functions"].values() if "keyVault" in f}
        text = json.dumps(self.objects)
        for placeholder in ids:
            self.assertNotIn(placeholder, text)


class DeveloperEnvironments(unittest.TestCase):
    """Two environments, alice and bob, render beside the shared dev one and share no
    object, host, namespace, queue or data scope."""

    @classmethod
    def setUpClass(cls):
        cls.rendered = {}
        for name in ("alice", "bob"):
            result = run("scripts/dev-env", "create", name, "--outputs", str(SAMPLE))
            if result.returncode != 0:
                raise AssertionError(f"scripts/dev-env create {name} failed:\n{result.stdout}\n{result.stderr}")
            cls.rendered[name] = objects(ROOT / "target" / "dev-env" / name)
        result = run("scripts/deploy", "dev", "--only", "render", "--outputs", str(SAMPLE))
        if result.returncode != 0:
            raise AssertionError(result.stderr)
        cls.rendered["dev"] = objects(ROOT / "target" / "deploy" / "dev")

    @staticmethod
    def names(objs):
        """(namespace, kind, name) of every object; a Namespace is cluster-wide."""
        return {(o["metadata"].get("namespace", ""), o["kind"], o["metadata"]["name"]) for o in objs}

    @staticmethod
    def hosts(objs):
        out = set()
        for o in objs:
            if o["kind"] == "Ingress":
                out |= {r["host"] for r in o["spec"]["rules"]}
            if o["kind"] == "InterceptorRoute":
                out |= {h for r in o["spec"]["rules"] for h in r["hosts"]}
        return out

    @staticmethod
    def env_values(objs, variable):
        return {e["value"] for o in objs if o["kind"] == "Deployment"
                for e in o["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == variable}

    def test_nothing_collides_between_environments(self):
        pairs = [("alice", "bob"), ("alice", "dev"), ("bob", "dev")]
        for a, b in pairs:
            with self.subTest(a=a, b=b):
                oa, ob = self.rendered[a], self.rendered[b]
                self.assertEqual(self.names(oa) & self.names(ob), set())
                self.assertEqual(self.hosts(oa) & self.hosts(ob), set())
                self.assertEqual(self.env_values(oa, "QUEUE_NAME") & self.env_values(ob, "QUEUE_NAME"), set())
                self.assertEqual(self.env_values(oa, "FABRIKAM_ENVIRONMENT")
                                 & self.env_values(ob, "FABRIKAM_ENVIRONMENT"), set())

    def test_each_environment_is_its_own_namespace_scaled_to_zero(self):
        for name in ("alice", "bob"):
            objs = self.rendered[name]
            namespaces = [o for o in objs if o["kind"] == "Namespace"]
            self.assertEqual([n["metadata"]["name"] for n in namespaces], [f"fabrikam-{name}"])
            self.assertEqual({o["metadata"]["namespace"] for o in objs if o["kind"] != "Namespace"},
                             {f"fabrikam-{name}"})
            self.assertEqual(len([o for o in objs if o["kind"] == "ResourceQuota"]), 1)
            scaled = [o for o in objs if o["kind"] == "ScaledObject"]
            functions = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] != "fabrikam-scaler"]
            self.assertEqual(len(scaled), len(functions))
            # Its own scaler, for its own queue.
            scaler = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "fabrikam-scaler")
            queues = {e["value"] for e in scaler["spec"]["template"]["spec"]["containers"][0]["env"]
                      if e["name"] == "SCALER_QUEUES"}
            self.assertEqual(queues, {f"deliveries-{name}"})
            for o in scaled:
                self.assertEqual(o["spec"]["minReplicaCount"], 0, o["metadata"]["name"])
            ingress = next(o for o in objs if o["kind"] == "Ingress")
            self.assertEqual(ingress["spec"]["rules"][0]["host"], f"{name}.{output('ingressHostName')}")
            # The cluster-wide objects come with the environment's own rendering, not with this.
            self.assertEqual([o for o in objs if o["kind"] == "NginxIngressController"], [])


class GitOpsPublication(unittest.TestCase):
    """scripts/publish-gitops, against a local bare repository standing in for origin."""

    def test_the_branch_gets_each_rendering_once_and_loses_what_it_no_longer_holds(self):
        import tempfile

        result = run("scripts/deploy", "dev", "--only", "render", "--outputs", str(SAMPLE))
        self.assertEqual(result.returncode, 0, result.stderr)
        rendered = ROOT / "target" / "deploy" / "dev"
        with tempfile.TemporaryDirectory() as tmp:
            remote = pathlib.Path(tmp) / "origin.git"
            subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)

            def publish(revision):
                r = run("scripts/publish-gitops", "dev", "gitops", revision, "--remote", str(remote))
                self.assertEqual(r.returncode, 0, r.stderr)
                return r.stdout

            def branch(*args):
                return subprocess.run(["git", "--git-dir", str(remote), *args], check=True,
                                      capture_output=True, text=True).stdout

            self.assertIn("published", publish("rev1"))
            files = sorted(branch("ls-tree", "-r", "--name-only", "gitops").split())
            self.assertEqual(files, sorted(f"dev/{p.name}" for p in rendered.glob("*.yaml")))
            for path in rendered.glob("*.yaml"):
                self.assertEqual(branch("show", f"gitops:dev/{path.name}"), path.read_text())
            self.assertIn("already holds this rendering", publish("rev2"))
            self.assertEqual(len(branch("log", "--oneline", "gitops").splitlines()), 1)

            stray = rendered / "workflow.yaml"
            kept = stray.read_text()
            stray.unlink()
            try:
                publish("rev3")
            finally:
                stray.write_text(kept)
            self.assertNotIn("dev/workflow.yaml", branch("ls-tree", "-r", "--name-only", "gitops"))
            self.assertIn("dev: the manifests of rev3", branch("log", "--format=%s", "gitops"))


FAKE_AZ = """#!/usr/bin/env python3
# A stand-in for the Azure CLI: records its arguments, one JSON line per call, and fails
# when FAKE_AZ_FAIL is set.
import json, os, sys
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit(1 if os.environ.get("FAKE_AZ_FAIL") else 0)
"""

DEV_REGISTRY_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/fabrikam-dev"
                   "/providers/Microsoft.ContainerRegistry/registries/fabrikamdevacr")


class Promotion(unittest.TestCase):
    """Prod's registry is private: scripts/import-images (the release's prod job, and
    scripts/deploy prod's images step) has it import each built digest from dev's, with a
    stand-in az that records what it is asked."""

    def setUp(self):
        import os
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        tmp = pathlib.Path(self.tmp.name)
        az = tmp / "az"
        az.write_text(FAKE_AZ)
        az.chmod(0o755)
        self.log = tmp / "az.log"
        self.env = {**os.environ, "PATH": f"{tmp}:{os.environ['PATH']}", "FAKE_AZ_LOG": str(self.log)}
        self.images = json.loads((ROOT / "target" / "images" / "images.json").read_text())["images"]

    def run_with_az(self, *args, fail=False):
        env = dict(self.env)
        if fail:
            env["FAKE_AZ_FAIL"] = "1"
        return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, env=env)

    def calls(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def test_each_built_digest_is_imported_from_the_source_registry_under_its_tag(self):
        result = self.run_with_az("scripts/import-images", "fabrikamprodacr.azurecr.io", DEV_REGISTRY_ID)
        self.assertEqual(result.returncode, 0, result.stderr)
        expected = [["acr", "import", "--name", "fabrikamprodacr", "--registry", DEV_REGISTRY_ID,
                     "--source", f"{i['name']}@{i['digest']}", "--image", f"{i['name']}:{i['tag']}",
                     "--force", "--only-show-errors"] for i in self.images]
        self.assertEqual(self.calls(), expected)

    def test_a_failed_import_stops_the_promotion(self):
        result = self.run_with_az("scripts/import-images", "fabrikamprodacr.azurecr.io", DEV_REGISTRY_ID, fail=True)
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(len(self.calls()), 1)

    def test_import_images_refuses_what_is_not_a_registry(self):
        for args in [(), ("fabrikamprodacr.azurecr.io",), ("ghcr.io", DEV_REGISTRY_ID),
                     ("fabrikamprodacr.azurecr.io", "fabrikamdevacr")]:
            with self.subTest(args=args):
                result = self.run_with_az("scripts/import-images", *args)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("usage: scripts/import-images", result.stderr)
        self.assertEqual(self.calls(), [])

    def test_deploy_prod_needs_the_source_registry_before_anything_runs(self):
        result = self.run_with_az("scripts/deploy", "prod", "rg", "westeurope")
        self.assertEqual(result.returncode, 2)
        self.assertIn("the prod registry is private", result.stderr)
        self.assertIn("--images-from", result.stderr)
        self.assertEqual(self.calls(), [], "nothing may reach Azure before the arguments are complete")

    def test_deploy_imports_into_a_private_registry_and_pushes_nothing(self):
        outputs = pathlib.Path(self.tmp.name) / "prod.outputs.json"
        sample = json.loads(SAMPLE.read_text())
        sample["registryLoginServer"]["value"] = "fabrikamprodacr.azurecr.io"
        sample["registryPrivate"]["value"] = True
        outputs.write_text(json.dumps(sample))
        result = self.run_with_az("scripts/deploy", "prod", "--only", "images", "--outputs", str(outputs),
                                  "--images-from", DEV_REGISTRY_ID)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual([c[:4] for c in self.calls()], [["acr", "import", "--name", "fabrikamprodacr"]] * len(self.images))

    def test_the_release_promotes_by_import_with_devs_registry_id(self):
        release = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
        kept = next(s for s in release["jobs"]["dev"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
        self.assertIn("infra/out/dev.outputs.json", kept["with"]["path"].split())
        prod = "\n".join(s.get("run", "") for s in release["jobs"]["prod"]["steps"])
        self.assertIn("scripts/import-images", prod)
        self.assertIn(".registryId.value infra/out/dev.outputs.json", prod)
        self.assertNotIn("push-images", prod)


if __name__ == "__main__":
    unittest.main()
