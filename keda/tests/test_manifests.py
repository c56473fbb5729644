"""Offline checks of the generated manifests (keda/dev, keda/prod).

FABRIKAM_MANIFESTS names other rendered folders instead, as `PROFILE=FOLDER` pairs separated
by commas (scripts/check-manifests --pinned checks the digest-pinned renderings so). Each
folder is built with `kubectl kustomize`; every built-in object is validated with
kubernetes-validate (Kubernetes 1.33 schemas, strict), and every KEDA and Secrets Store
custom resource against its CRD's openAPIV3Schema (keda/tests/crds, the upstream CRDs) with
unknown fields refused, as the API server refuses them for structural schemas.
"""

import copy
import ipaddress
import json
import os
import pathlib
import re
import subprocess
import tempfile
import unittest

import jsonschema
import yaml

KEDA = pathlib.Path(__file__).resolve().parent.parent
CRDS = KEDA / "tests" / "crds"
KUBERNETES_VERSION = "1.33.0"
# The host's own KEDA external scaler, one per namespace (keda/<profile>/scaler.yaml).
SCALER = "fabrikam-scaler"


def function_deployments(objects):
    return [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] != SCALER]


def folders():
    """(name, profile, folder) of every rendered folder to check."""
    given = os.environ.get("FABRIKAM_MANIFESTS")
    if not given:
        return [(p, p, KEDA / p) for p in ("dev", "prod")]
    out = []
    for pair in given.split(","):
        profile, folder = pair.split("=", 1)
        out.append((folder, profile, pathlib.Path(folder)))
    return out


def strict(schema):
    """The schema with unknown fields refused wherever properties are listed and the
    schema does not say it keeps unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def crd_schemas():
    """(apiVersion, kind) -> strict schema, for every served version of every CRD."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            # metadata is the API server's, not the CRD's, to check.
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def built(folder):
    out = subprocess.run(
        ["kubectl", "kustomize", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


class GeneratedManifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.schemas = crd_schemas()
        cls.folders = folders()
        cls.objects = {name: built(folder) for name, _, folder in cls.folders}
        cls.profiles = {name: profile for name, profile, _ in cls.folders}

    def test_every_overlay_builds_and_holds_each_function(self):
        for name, objects in self.objects.items():
            profile = self.profiles[name]
            kinds = {}
            for o in objects:
                kinds.setdefault(o["kind"], []).append(o["metadata"]["name"])
            functions = [n for n in kinds["Deployment"] if n != SCALER]
            with self.subTest(folder=name):
                self.assertEqual(len(functions), 5, kinds)
                self.assertIn(SCALER, kinds["Deployment"], "the queue function's scaler")
                self.assertEqual(sorted(kinds["ScaledObject"]), sorted(functions))
                self.assertEqual(len(kinds["InterceptorRoute"]), 4)
                self.assertNotIn("HTTPScaledObject", kinds)
                budgets = [n for n in kinds.get("PodDisruptionBudget", []) if n != SCALER]
                self.assertEqual(len(budgets), 5 if profile == "prod" else 0)
                self.assertIn(SCALER, kinds["PodDisruptionBudget"])

    def test_custom_resources_match_their_crds_with_unknown_fields_refused(self):
        checked = 0
        for profile, objects in self.objects.items():
            for o in objects:
                key = (o["apiVersion"], o["kind"])
                if key not in self.schemas:
                    continue
                with self.subTest(profile=profile, kind=o["kind"], name=o["metadata"]["name"]):
                    jsonschema.validate(o, self.schemas[key])
                    checked += 1
        self.assertGreaterEqual(checked, len(self.objects) * (1 + 1 + 4 + 3))

    def test_the_strict_schema_refuses_an_unknown_field(self):
        objects = next(iter(self.objects.values()))
        scaled = next(o for o in objects if o["kind"] == "ScaledObject")
        broken = copy.deepcopy(scaled)
        broken["spec"]["triggers"][0]["metdata"] = broken["spec"]["triggers"][0].pop("metadata")
        with self.assertRaises(jsonschema.ValidationError):
            jsonschema.validate(broken, self.schemas[(scaled["apiVersion"], "ScaledObject")])

    def test_built_in_objects_validate_against_kubernetes_schemas(self):
        for profile, objects in self.objects.items():
            builtins = [
                o for o in objects if (o["apiVersion"], o["kind"]) not in self.schemas
            ]
            with tempfile.TemporaryDirectory() as tmp:
                files = []
                for i, o in enumerate(builtins):
                    path = pathlib.Path(tmp) / f"{i:02}-{o['kind']}-{o['metadata']['name']}.yaml"
                    path.write_text(yaml.safe_dump(o))
                    files.append(str(path))
                result = subprocess.run(
                    ["kubernetes-validate", "-k", KUBERNETES_VERSION, "--strict", *files],
                    capture_output=True,
                    text=True,
                )
            with self.subTest(profile=profile):
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertNotIn("ERROR", result.stdout)

    def test_the_scale_and_security_settings_the_issue_names(self):
        for name, objects in self.objects.items():
            profile = self.profiles[name]
            by_kind = lambda kind: [o for o in objects if o["kind"] == kind]
            for d in by_kind("Deployment"):
                pod = d["spec"]["template"]["spec"]
                container = pod["containers"][0]
                with self.subTest(profile=profile, deployment=d["metadata"]["name"]):
                    self.assertEqual(
                        d["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"],
                        "true",
                    )
                    self.assertTrue(pod["securityContext"]["runAsNonRoot"])
                    self.assertEqual(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
                    self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
                    self.assertFalse(container["securityContext"]["allowPrivilegeEscalation"])
                    env = {e["name"]: e.get("value") for e in container["env"]}
                    if d["metadata"]["name"] != SCALER:
                        grace = int(env["SHUTDOWN_GRACE_SECONDS"])
                        self.assertGreater(pod["terminationGracePeriodSeconds"], grace)
                    if "QUEUE_HANDLER_TIMEOUT_SECONDS" in env:
                        # A scale-in lets a handler that has just started run to its timeout.
                        self.assertGreaterEqual(grace, int(env["QUEUE_HANDLER_TIMEOUT_SECONDS"]))
                    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                        self.assertIn(probe, container)
            for s in by_kind("ScaledObject"):
                if profile == "dev":
                    self.assertEqual(s["spec"]["minReplicaCount"], 0, s["metadata"]["name"])
            for t in by_kind("TriggerAuthentication"):
                self.assertEqual(t["spec"]["podIdentity"]["provider"], "azure-workload")
            ingress = by_kind("Ingress")[0]
            paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
            self.assertEqual(sorted(paths), ["/api/deliveries/public", "/api/deliveryrequests"])

    def committed_input(self, name):
        """The input a committed folder (keda/dev, keda/prod) was rendered from; None for other
        renderings (from infra's outputs, or a developer environment's)."""
        profile = self.profiles[name]
        folder = next(f for n, _, f in self.folders if n == name)
        if pathlib.Path(folder).resolve() != (KEDA / profile).resolve():
            return None
        return json.loads((KEDA / "input" / f"{profile}.json").read_text())

    @staticmethod
    def is_developer_environment(objects):
        """A developer environment's functions are told its name (FABRIKAM_ENVIRONMENT, which
        scopes their data); it renders no cluster-wide object."""
        return any(e["name"] == "FABRIKAM_ENVIRONMENT"
                   for o in objects if o["kind"] == "Deployment"
                   for e in o["spec"]["template"]["spec"]["containers"][0]["env"])

    def test_the_ingress_uses_the_internal_controller_at_the_address_infra_gives(self):
        for name, objects in self.objects.items():
            with self.subTest(rendering=name):
                ingress = next(o for o in objects if o["kind"] == "Ingress")
                controllers = [o for o in objects if o["kind"] == "NginxIngressController"]
                if self.is_developer_environment(objects):
                    # It shares its cluster's controller (rendered with the environment).
                    self.assertEqual(controllers, [])
                    self.assertEqual(ingress["spec"]["ingressClassName"], "fabrikam-internal")
                    continue
                self.assertEqual(len(controllers), 1)
                spec = controllers[0]["spec"]
                self.assertNotIn("namespace", controllers[0]["metadata"], "it is cluster-scoped")
                self.assertEqual(ingress["spec"]["ingressClassName"], spec["ingressClassName"])
                lb = spec["loadBalancerAnnotations"]
                self.assertEqual(lb["service.beta.kubernetes.io/azure-load-balancer-internal"], "true")
                address = lb["service.beta.kubernetes.io/azure-load-balancer-ipv4"]
                self.assertIsInstance(ipaddress.ip_address(address), ipaddress.IPv4Address)
                self.assertTrue(lb["service.beta.kubernetes.io/azure-load-balancer-internal-subnet"])
                given = self.committed_input(name)
                if given:
                    self.assertEqual(address, given["ingressPrivateIp"])
                    self.assertEqual(lb["service.beta.kubernetes.io/azure-load-balancer-internal-subnet"], given["ingressSubnet"])
                    self.assertEqual(ingress["spec"]["rules"][0]["host"], given["publicHost"])

    def test_managed_prometheus_scrapes_the_functions_and_keda(self):
        for name, objects in self.objects.items():
            with self.subTest(rendering=name):
                maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
                for d in (o for o in objects if o["kind"] == "Deployment"):
                    self.assertEqual(d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"], "true")
                if self.is_developer_environment(objects):
                    # Its cluster's settings cover it (the "-alice" case below).
                    self.assertNotIn("ama-metrics-settings-configmap", maps)
                    continue
                settings = maps["ama-metrics-settings-configmap"]
                self.assertEqual(settings["metadata"]["namespace"], "kube-system")
                regex = re.search(r'podannotationnamespaceregex = "([^"]+)"', settings["data"]["pod-annotation-based-scraping"])[1]
                namespaces = {o["metadata"].get("namespace") for o in objects if o["kind"] == "Deployment"}
                for namespace in namespaces:
                    self.assertRegex(namespace, regex)
                    self.assertRegex(f"{namespace}-alice", regex, "a developer environment's namespace")
                scrape = maps["ama-metrics-prometheus-config"]
                self.assertEqual(scrape["metadata"]["namespace"], "kube-system")
                # Parsed, not `promtool check config`: Debian's promtool is built without
                # Kubernetes service discovery and refuses kubernetes_sd_configs.
                job = yaml.safe_load(scrape["data"]["prometheus-config"])["scrape_configs"][0]
                self.assertEqual(job["job_name"], "keda-operator")
                self.assertEqual(job["kubernetes_sd_configs"], [{"role": "pod", "namespaces": {"names": ["kube-system"]}}])
                keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r["action"] == "keep"}
                self.assertEqual(keep, {"__meta_kubernetes_pod_label_app": "keda-operator",
                                        "__meta_kubernetes_pod_container_port_number": "8080"})

    def test_replicas_spread_over_zones_then_nodes(self):
        for name, objects in self.objects.items():
            # The scaler runs one replica on purpose (scaler.yaml says why): nothing to spread.
            for d in function_deployments(objects):
                with self.subTest(rendering=name, deployment=d["metadata"]["name"]):
                    spread = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
                    self.assertEqual([c["topologyKey"] for c in spread],
                                     ["topology.kubernetes.io/zone", "kubernetes.io/hostname"])
                    for c in spread:
                        self.assertEqual(c["labelSelector"]["matchLabels"], d["spec"]["selector"]["matchLabels"])
                        self.assertEqual(c["maxSkew"], 1)

    def test_functions_reach_the_private_endpoints_subnet_on_their_outputs_ports(self):
        for name, objects in self.objects.items():
            given = self.committed_input(name)
            policies = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-egress-azure")]
            self.assertEqual(len(policies), 5 + 1, "each function's, and the scaler's")
            for p in policies:
                with self.subTest(rendering=name, policy=p["metadata"]["name"]):
                    blocks = [t["ipBlock"]["cidr"] for t in p["spec"]["egress"][0]["to"]]
                    private = [b for b in blocks if b != "0.0.0.0/0"]
                    self.assertEqual(len(private), 1, blocks)
                    self.assertTrue(ipaddress.ip_network(private[0]).is_private, private)
                    if given:
                        self.assertEqual(private[0], given["privateEndpointsCidr"])

    def test_pinned_renderings_name_every_image_by_digest(self):
        if not os.environ.get("FABRIKAM_PINNED"):
            self.skipTest("the committed folders name images by tag")
        for name, objects in self.objects.items():
            for d in (o for o in objects if o["kind"] == "Deployment"):
                image = d["spec"]["template"]["spec"]["containers"][0]["image"]
                with self.subTest(folder=name, deployment=d["metadata"]["name"]):
                    self.assertRegex(image, r"^[^@]+/fabrikam-[a-z]+:[^@]+@sha256:[0-9a-f]{64}$")


    def test_http_routing_is_consistent_from_ingress_to_function(self):
        """Every HTTP function's ScaledObject scales on its InterceptorRoute, which targets its
        Service; every Ingress path and every URL a function calls another at is routed by an
        InterceptorRoute rule on that host; the interceptor may reach the functions."""
        for name, objects in self.objects.items():
            by_kind = lambda kind: {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
            routes, services = by_kind("InterceptorRoute"), by_kind("Service")

            def routed(host, path):
                return [r for r, o in routes.items() for rule in o["spec"]["rules"]
                        if host in rule.get("hosts", [])
                        and any(path.startswith(p["value"]) for p in rule.get("paths", []))]

            with self.subTest(folder=name):
                def http_scaled(so):
                    return "interceptorRoute" in so["spec"]["triggers"][0]["metadata"]

                for so in by_kind("ScaledObject").values():
                    trigger = so["spec"]["triggers"][0]
                    if not http_scaled(so):
                        continue
                    route = routes[trigger["metadata"]["interceptorRoute"]]
                    self.assertEqual(route["spec"]["target"]["service"], so["spec"]["scaleTargetRef"]["name"])
                    self.assertIn(route["spec"]["target"]["service"], services)
                    self.assertTrue(trigger["metadata"]["scalerAddress"].startswith(
                        "keda-add-ons-http-external-scaler."))
                self.assertEqual(len(routes), sum(
                    1 for so in by_kind("ScaledObject").values() if http_scaled(so)))
                ingress = next(iter(by_kind("Ingress").values()))
                backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
                self.assertEqual(services[backend]["spec"]["type"], "ExternalName")
                for rule in ingress["spec"]["rules"]:
                    for path in rule["http"]["paths"]:
                        self.assertEqual(len(routed(rule["host"], path["path"])), 1, path["path"])
                for d in by_kind("Deployment").values():
                    for e in d["spec"]["template"]["spec"]["containers"][0]["env"]:
                        if e["name"].endswith("_SERVICE_URL"):
                            host = e["value"].split("//", 1)[1].split(":", 1)[0]
                            self.assertEqual(host.split(".")[0], backend, e["name"])
                            # Every route answers on the host the calls use.
                            for route, o in routes.items():
                                hosts = {h for rule in o["spec"]["rules"] for h in rule["hosts"]}
                                self.assertIn(host, hosts, f"{e['name']}: {route} is not on {host}")


    def test_queue_functions_scale_on_their_own_scaler_with_the_queue_as_fallback(self):
        """A queue function's ScaledObject asks this namespace's scaler first (external-push,
        backlog + in flight) and keeps azure-servicebus on the same queue beside it; the
        scaler serves exactly those queues; the function reports to it; the policies let
        KEDA and the reports in."""
        for name, objects in self.objects.items():
            by_kind = lambda kind: {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
            scaler = by_kind("Deployment")[SCALER]
            scaler_env = {e["name"]: e.get("value") for e in scaler["spec"]["template"]["spec"]["containers"][0]["env"]}
            namespace = scaler["metadata"]["namespace"]
            served = set(scaler_env["SCALER_QUEUES"].split(","))
            with self.subTest(rendering=name):
                self.assertEqual(scaler["spec"]["replicas"], 1)
                self.assertEqual(scaler["spec"]["strategy"]["type"], "Recreate")
                queues = set()
                for so in by_kind("ScaledObject").values():
                    types = [t["type"] for t in so["spec"]["triggers"]]
                    if "azure-servicebus" not in types:
                        continue
                    pushed, polled = so["spec"]["triggers"]
                    self.assertEqual((pushed["type"], polled["type"]), ("external-push", "azure-servicebus"))
                    self.assertEqual(pushed["metadata"]["scalerAddress"], f"{SCALER}.{namespace}.svc.cluster.local:9090")
                    self.assertEqual(pushed["metadata"]["queueName"], polled["metadata"]["queueName"])
                    self.assertEqual(pushed["metadata"]["targetSize"], polled["metadata"]["messageCount"])
                    self.assertEqual(so["spec"]["fallback"]["behavior"], "currentReplicasIfHigher")
                    queues.add(pushed["metadata"]["queueName"])
                    function = by_kind("Deployment")[so["spec"]["scaleTargetRef"]["name"]]
                    env = function["spec"]["template"]["spec"]["containers"][0]["env"]
                    self.assertIn({"name": "SCALER_URL", "value": f"http://{SCALER}"}, env)
                    self.assertIn({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, env)
                self.assertEqual(queues, served)
                policies = by_kind("NetworkPolicy")
                ingress = policies[f"{SCALER}-ingress"]["spec"]["ingress"]
                self.assertEqual([r["ports"][0]["port"] for r in ingress], [9090, 8080])
                self.assertEqual(ingress[0]["from"][0]["podSelector"]["matchLabels"], {"app": "keda-operator"})
                egress = policies["queue-functions-to-scaler"]["spec"]["egress"][0]
                self.assertEqual(egress["to"][0]["podSelector"]["matchLabels"], {"app.kubernetes.io/name": SCALER})
                account = by_kind("ServiceAccount")[SCALER]
                given = self.committed_input(name)
                if given:
                    self.assertEqual(account["metadata"]["annotations"]["azure.workload.identity/client-id"],
                                     given["scalerClientId"])


class CheckovExceptions(unittest.TestCase):
    def test_every_skipped_check_is_explained_in_the_readme(self):
        config = yaml.safe_load((KEDA / ".checkov.yaml").read_text())
        readme = (KEDA / "README.md").read_text()
        section = readme.split("## checkov exceptions", 1)[1].split("\n## ", 1)[0]
        explained = {
            line.split("|")[1].strip().strip("`")
            for line in section.splitlines()
            if line.startswith("| `CKV")
        }
        self.assertEqual(set(config.get("skip-check", [])), explained)


if __name__ == "__main__":
    unittest.main()
