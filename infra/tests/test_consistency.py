"""Infra, the manifests and the functions' declarations, held against one another.

Each side states names the others depend on: the queue, the namespace and service accounts
the federated credentials name, each function's secrets and vault, who may send or receive
on which queue, KEDA's identity, and the add-ons the Ingress relies on. Each check below
compares one name as two places state it, and a failure names both places. The `Mutations`
class changes each name on one side only and shows the checks catch it.

Sources:
- the declarations: `fabrikam functions --json` (FABRIKAM_DECLARATIONS names a file holding
  it; scripts/check-infra writes one);
- infra: infra/main.bicep and its modules (parsed by checkov's Bicep parser), and
  infra/functions.json, which main.bicep loads;
- the manifests: the committed keda/dev and keda/prod and their input files;
- scripts/deploy (where the HTTP add-on is installed).
"""

import copy
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import unittest

import pycep
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
PROFILES = ("dev", "prod")
DECLARED = "the functions' declarations (`fabrikam functions --json`)"

# Names fixed by Azure, not by this project.
BUILT_IN_ROLES = {
    "Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",  # Azure Service Bus Data Sender
    "Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",  # Azure Service Bus Data Receiver
    "MetricsReader": "090c5cfd-751d-490a-894a-3ce6f1109419",  # Azure Service Bus Data Owner
}
KEDA_ADD_ON = ("system:serviceaccount:kube-system:keda-operator",
               "the AKS KEDA add-on (its operator runs as kube-system/keda-operator)")
# The Ingress's class is one the add-on runs because an NginxIngressController declares it
# (keda/<profile>/cluster.yaml: the internal controller Application Gateway forwards to).
DECLARED_CLASS = "a class an NginxIngressController declares"
APP_ROUTING = {"class": DECLARED_CLASS, "namespace": "app-routing-system"}
APP_ROUTING_PLACE = "the AKS application routing add-on (its controllers in app-routing-system, one per NginxIngressController)"


_PARSED = {}


def bicep(relative, root=ROOT):
    """A Bicep file parsed, once per distinct text (the edit tests change one file at a time)."""
    path = root / "infra" / relative
    key = (relative, path.read_text())
    if key not in _PARSED:
        _PARSED[key] = pycep.BicepParser().parse(file_path=path)
    return _PARSED[key]


def accessor_path(node):
    """`a.b.c` for a parsed property accessor, or None."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "property_accessor":
        operands = node["operator"]["operands"]
        left, right = accessor_path(operands["operand_1"]), accessor_path(operands["operand_2"])
        if left and right:
            return f"{left}.{right}"
    return None


def loop(template, kind, name):
    config = template[kind][name]["config"]
    return config["loop_type"]["detail"], config["config"]


def declarations():
    path = os.environ.get("FABRIKAM_DECLARATIONS")
    if path:
        return json.loads(pathlib.Path(path).read_text())
    out = subprocess.run(["cargo", "run", "--quiet", "--locked", "-p", "host", "--", "functions", "--json"],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def manifests(profile, root):
    objects = []
    for path in sorted((root / "keda" / profile).glob("*.yaml")):
        objects += [o for o in yaml.safe_load_all(path.read_text()) if o]
    return [o for o in objects if o.get("kind") != "Kustomization"]


class Fact:
    def __init__(self, value, place):
        self.value, self.place = value, place

    def __repr__(self):
        return f"{self.value!r} in {self.place}"


def load_facts(root=ROOT):
    """Every name the checks compare, with the place that states it, as the files under
    `root` state them."""
    facts = {}
    decls = declarations()
    registry = json.loads((root / "infra" / "functions.json").read_text())
    main = bicep("main.bicep", root)
    infra_place = "infra/functions.json (which infra/main.bicep loads)"

    def queues_of(d):
        trigger = [t["queue"] for t in d["triggers"] if t["kind"] == "queue"]
        outputs = [o["queue"] for o in d.get("outputs", []) if o["kind"] == "queue"]
        return trigger, outputs

    facts["queues.declared"] = Fact(sorted({q for d in decls for part in queues_of(d) for q in part}), DECLARED)
    facts["queues.triggers"] = Fact(sorted({q for d in decls for q in queues_of(d)[0]}), DECLARED + ", queue triggers")
    facts["queues.infra"] = Fact(sorted(registry["queues"]), infra_place + ", queues")
    given = main["modules"]["serviceBus"]["config"]["params"]["queueNames"]
    if accessor_path(given) == "registry.queues":
        given = sorted(registry["queues"])
    elif isinstance(given, str) and given in main["parameters"]:
        given = main["parameters"][given].get("default")
    facts["queues.bicep"] = Fact(given if isinstance(given, list) else [given],
                                 "infra/main.bicep, the queueNames it gives modules/servicebus.bicep")
    detail, _ = loop(main, "modules", "kedaReadsQueue")
    facts["queues.keda_role"] = Fact(
        sorted(registry["scaledQueues"]) if accessor_path(detail["array_name"]) == "registry.scaledQueues"
        else detail["array_name"], "infra/main.bicep kedaReadsQueue, the queues KEDA's identity may read")

    detail, _ = loop(main, "modules", "scalerReadsQueue")
    facts["queues.scaler_role"] = Fact(
        sorted(registry["scaledQueues"]) if accessor_path(detail["array_name"]) == "registry.scaledQueues"
        else detail["array_name"], "infra/main.bicep scalerReadsQueue, the queues the scaler's identity may read")

    facts["roles.declared"] = Fact(sorted(
        [[d["name"], q, "Receiver"] for d in decls for q in queues_of(d)[0]]
        + [[d["name"], q, "Sender"] for d in decls for q in queues_of(d)[1]]), DECLARED + ", who receives and sends")
    names = [f["name"] for f in registry["functions"]]
    facts["roles.infra"] = Fact(sorted(
        [names[r["functionIndex"]] if r["functionIndex"] < len(names) else f"#{r['functionIndex']}", r["queue"], r["role"]]
        for r in registry["queueRoles"]), infra_place + ", queueRoles (the identity each role goes to)")
    role_ids = bicep("modules/queue-access.bicep", root)["variables"]["roleIds"]["value"]
    facts["roles.ids"] = Fact(dict(role_ids), "infra/modules/queue-access.bicep roleIds")
    facts["roles.built_in"] = Fact(dict(BUILT_IN_ROLES), "Azure's built-in Service Bus roles")

    facts["functions.declared"] = Fact([d["name"] for d in decls], DECLARED + ", the functions")
    facts["functions.infra"] = Fact(names, infra_place + ", functions")
    facts["secrets.declared"] = Fact({d["name"]: sorted(d.get("secrets", [])) for d in decls}, DECLARED + ", secrets")
    facts["secrets.infra"] = Fact({f["name"]: sorted(f["secrets"]) for f in registry["functions"]},
                                  infra_place + ", secrets (what each vault gets)")
    facts["secrets.bicep_values"] = Fact(
        sorted(k.strip("'") for k in main["variables"]["secretValues"]["value"]),
        "infra/main.bicep secretValues (the objects infra can fill)")

    params = main["parameters"]
    facts["namespace.bicep"] = Fact(params["kubernetesNamespace"]["default"], "infra/main.bicep param kubernetesNamespace")
    _, function_module = loop(main, "modules", "function")
    passed = function_module["params"]
    template = bicep("modules/function.bicep", root)["resources"]["federation"]["config"]["properties"]["subject"]
    namespace_given = params["kubernetesNamespace"]["default"] if passed["kubernetesNamespace"] == "kubernetesNamespace" \
        else passed["kubernetesNamespace"]
    subjects = []
    for name in names:
        function_name = name if accessor_path(passed["functionName"]) == "f.name" else passed["functionName"]
        subjects.append(template.replace("${kubernetesNamespace}", str(namespace_given))
                        .replace("${functionName}", str(function_name)))
    scaler_subject = main["resources"]["scalerFederation"]["config"]["properties"]["subject"]
    subjects.append(scaler_subject.replace("${kubernetesNamespace}", str(params["kubernetesNamespace"]["default"])))
    facts["subjects.bicep"] = Fact(sorted(subjects),
                                   "infra/modules/function.bicep federated credential subjects (as infra/main.bicep "
                                   "fills them), and infra/main.bicep scalerFederation's")
    facts["keda.subject.bicep"] = Fact(
        main["resources"]["kedaFederation"]["config"]["properties"]["subject"],
        "infra/main.bicep kedaFederation subject")
    facts["keda.subject.add_on"] = Fact(*KEDA_ADD_ON)

    aks = bicep("modules/aks.bicep", root)["resources"]["aks"]["config"]["properties"]
    facts["approuting.bicep"] = Fact(
        APP_ROUTING if aks["ingressProfile"]["webAppRouting"]["enabled"] is True else "disabled",
        "infra/modules/aks.bicep ingressProfile.webAppRouting")
    facts["approuting.add_on"] = Fact(APP_ROUTING, APP_ROUTING_PLACE)

    facts["gitops.bicep"] = Fact(params["gitopsBranch"]["default"], "infra/main.bicep param gitopsBranch")
    release = yaml.safe_load((root / ".github" / "workflows" / "release.yml").read_text())
    facts["gitops.release"] = Fact(release["env"]["GITOPS_BRANCH"],
                                   ".github/workflows/release.yml GITOPS_BRANCH (where it publishes)")
    deploy = (root / "scripts" / "deploy").read_text()
    helm = re.search(r"helm upgrade --install \S+ kedacore/keda-add-ons-http --namespace (\S+)", deploy)
    facts["httpaddon.deploy"] = Fact(helm.group(1) if helm else None,
                                     "scripts/deploy, the namespace helm installs the HTTP add-on into")

    for profile in PROFILES:
        objects = manifests(profile, root)
        place = f"keda/{profile}"
        env = json.loads((root / "keda" / "input" / f"{profile}.json").read_text())
        kind = lambda k: [o for o in objects if o["kind"] == k]
        deployments = kind("Deployment")
        accounts = {o["metadata"]["name"]: o for o in kind("ServiceAccount")}
        facts[f"namespace.input.{profile}"] = Fact(env["namespace"], f"keda/input/{profile}.json namespace")
        facts[f"namespace.manifests.{profile}"] = Fact(
            # kube-system holds managed Prometheus's settings (cluster.yaml), not the system.
            sorted({o["metadata"]["namespace"] for o in objects
                    if o["metadata"].get("namespace") not in (None, "kube-system")}),
            f"{place}, the objects' namespace")
        facts[f"subjects.manifests.{profile}"] = Fact(sorted(
            f"system:serviceaccount:{d['metadata']['namespace']}:{d['spec']['template']['spec']['serviceAccountName']}"
            for d in deployments
            if d["spec"]["template"]["spec"]["serviceAccountName"] in accounts),
            f"{place}, each Deployment's ServiceAccount")
        servicebus = [t for o in kind("ScaledObject") for t in o["spec"]["triggers"] if t["type"] == "azure-servicebus"]
        facts[f"queues.scaled.{profile}"] = Fact(
            sorted({t["metadata"]["queueName"] for t in servicebus}),
            f"{place}, the azure-servicebus triggers' queueName")
        facts[f"queues.env.{profile}"] = Fact(sorted({
            e["value"] for d in deployments for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
            if e["name"] == "QUEUE_NAME"}), f"{place}, the Deployments' QUEUE_NAME")
        facts[f"secrets.spc.{profile}"] = Fact({
            o["metadata"]["name"].removesuffix("-secrets"): sorted(
                yaml.safe_load(item)["objectName"]
                for item in yaml.safe_load(o["spec"]["parameters"]["objects"])["array"])
            for o in kind("SecretProviderClass")}, f"{place}, the SecretProviderClasses' objects")
        facts[f"vaults.spc.{profile}"] = Fact({
            o["metadata"]["name"].removesuffix("-secrets"): o["spec"]["parameters"]["keyvaultName"]
            for o in kind("SecretProviderClass")}, f"{place}, the SecretProviderClasses' keyvaultName")
        with_secrets = {d["name"] for d in decls if d.get("secrets")}
        facts[f"vaults.input.{profile}"] = Fact({
            name: f["keyVault"] for name, f in env["functions"].items() if name in with_secrets},
            f"keda/input/{profile}.json functions.*.keyVault (of the functions with secrets)")
        facts[f"clients.manifests.{profile}"] = Fact({
            name: a["metadata"]["annotations"]["azure.workload.identity/client-id"] for name, a in accounts.items()},
            f"{place}, the ServiceAccounts' client-id")
        facts[f"clients.input.{profile}"] = Fact({
            **{name: f["clientId"] for name, f in env["functions"].items()},
            "fabrikam-scaler": env["scalerClientId"]},
            f"keda/input/{profile}.json functions.*.clientId and scalerClientId")
        facts[f"keda.identity.manifests.{profile}"] = Fact(
            sorted({o["spec"]["podIdentity"]["identityId"] for o in kind("TriggerAuthentication")}),
            f"{place}, the TriggerAuthentications' identityId")
        facts[f"keda.identity.input.{profile}"] = Fact([env["kedaClientId"]], f"keda/input/{profile}.json kedaClientId")
        ingress = kind("Ingress")[0]
        policies = {o["metadata"]["name"]: o for o in kind("NetworkPolicy")}
        routing_from = [f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                        for f in policies["allow-ingress-to-http-functions"]["spec"]["ingress"][0]["from"]]
        declared = {o["spec"]["ingressClassName"] for o in kind("NginxIngressController")
                    if o["apiVersion"].startswith("approuting.kubernetes.azure.com/")}
        ingress_class = ingress["spec"]["ingressClassName"]
        facts[f"approuting.{profile}"] = Fact(
            {"class": DECLARED_CLASS if ingress_class in declared else ingress_class,
             "namespace": APP_ROUTING["namespace"] if APP_ROUTING["namespace"] in routing_from else routing_from},
            f"{place}, the Ingress's class and the network policy letting the controller in")
        external = next(o for o in kind("Service") if o["spec"].get("type") == "ExternalName")
        scalers = {t["metadata"]["scalerAddress"] for o in kind("ScaledObject") for t in o["spec"]["triggers"]
                   if "interceptorRoute" in t["metadata"]}
        add_on_namespaces = {external["spec"]["externalName"].split(".")[1]} | {s.split(".")[1].split(":")[0] for s in scalers}
        facts[f"httpaddon.{profile}"] = Fact(
            add_on_namespaces.pop() if len(add_on_namespaces) == 1 else sorted(add_on_namespaces),
            f"{place}, the namespace of the interceptor (ExternalName) and the external scaler")
    return facts


def equal(a, b):
    return a == b


def contains_all(whole, part):
    """Every secret in `part` (a name -> list map or a list) is in `whole`."""
    wanted = {s for v in part.values() for s in v} if isinstance(part, dict) else set(part)
    return wanted <= set(whole) if isinstance(whole, list) else False


def declared_only(a, b):
    """`b` (per function) matches `a` for every function that declares any."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return all(b.get(k) == v for k, v in a.items() if v)


# (what, fact, fact, relation): each compares one name as two places state it.
CHECKS = [
    ("the functions", "functions.declared", "functions.infra", equal),
    ("the queues", "queues.declared", "queues.infra", equal),
    ("the queues infra creates", "queues.infra", "queues.bicep", equal),
    ("the queues KEDA may read", "queues.triggers", "queues.keda_role", equal),
    ("the queues the scaler may read", "queues.triggers", "queues.scaler_role", equal),
    ("who sends and receives", "roles.declared", "roles.infra", equal),
    ("the role definitions", "roles.built_in", "roles.ids", equal),
    ("each function's secrets", "secrets.declared", "secrets.infra", equal),
    ("the secrets infra can fill", "secrets.bicep_values", "secrets.declared", contains_all),
    ("KEDA's federated subject", "keda.subject.add_on", "keda.subject.bicep", equal),
    ("the app routing add-on", "approuting.add_on", "approuting.bicep", equal),
    ("the GitOps branch", "gitops.bicep", "gitops.release", equal),
]
for _profile in PROFILES:
    CHECKS += [
        (f"the namespace ({_profile})", "namespace.bicep", f"namespace.input.{_profile}", equal),
        (f"the namespace ({_profile})", f"namespace.input.{_profile}", f"namespace.manifests.{_profile}",
         lambda a, b: [a] == b),
        (f"the federated subjects ({_profile})", "subjects.bicep", f"subjects.manifests.{_profile}", equal),
        (f"the scaled queues ({_profile})", "queues.triggers", f"queues.scaled.{_profile}", equal),
        (f"the queues used ({_profile})", "queues.declared", f"queues.env.{_profile}", equal),
        (f"each function's secrets ({_profile})", "secrets.declared", f"secrets.spc.{_profile}", declared_only),
        (f"each function's vault ({_profile})", f"vaults.input.{_profile}", f"vaults.spc.{_profile}", equal),
        (f"each function's identity ({_profile})", f"clients.input.{_profile}", f"clients.manifests.{_profile}", equal),
        (f"KEDA's identity ({_profile})", f"keda.identity.input.{_profile}", f"keda.identity.manifests.{_profile}", equal),
        (f"the app routing add-on ({_profile})", "approuting.add_on", f"approuting.{_profile}", equal),
        (f"the HTTP add-on's namespace ({_profile})", "httpaddon.deploy", f"httpaddon.{_profile}", equal),
    ]


def problems(facts):
    out = []
    for what, a, b, relation in CHECKS:
        if not relation(facts[a].value, facts[b].value):
            out.append(f"{what}: {facts[a].value!r} in {facts[a].place}, but {facts[b].value!r} in {facts[b].place}")
    return out


class Consistency(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.facts = load_facts()

    def test_infra_manifests_and_declarations_agree(self):
        self.assertEqual(problems(self.facts), [])

    def test_the_outputs_infra_declares_are_the_ones_the_manifests_read(self):
        """A sample outputs file shaped from infra/main.bicep's own output declarations
        renders; a missing or renamed output fails naming it."""
        main = bicep("main.bicep")
        names = [d["name"] for d in declarations()]
        sample = json.loads((INFRA / "tests" / "sample" / "dev.outputs.json").read_text())
        self.assertEqual(sorted(sample), sorted(main["outputs"]),
                         "infra/tests/sample/dev.outputs.json must have exactly infra/main.bicep's outputs")
        self.assertEqual(sorted(f["name"] for f in sample["functionIdentities"]["value"]), sorted(names))
        self.assertEqual(render_with(sample).returncode, 0)
        broken = copy.deepcopy(sample)
        broken["kedaClientIdentity"] = broken.pop("kedaClientId")
        run = render_with(broken)
        self.assertEqual(run.returncode, 1)
        self.assertIn("kedaClientId is missing (infra/main.bicep must output it)", run.stderr)


def render_with(outputs):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "outputs.json"
        path.write_text(json.dumps(outputs))
        fabrikam = os.environ.get("FABRIKAM", str(ROOT / "target" / "debug" / "fabrikam"))
        return subprocess.run([fabrikam, "manifests", "--profile", "dev", "--outputs", str(path),
                               "--out", str(pathlib.Path(tmp) / "out")], cwd=ROOT, capture_output=True, text=True)


def changed(value):
    """`value` with one name changed."""
    if isinstance(value, str):
        return value + "-changed"
    if isinstance(value, bool):
        return not value
    if isinstance(value, list):
        return [changed(value[0]), *value[1:]] if value else ["extra"]
    if isinstance(value, dict):
        key = next((k for k, v in value.items() if v), next(iter(value), None))
        if key is None:
            return {"extra": "changed"}
        out = dict(value)
        out[key] = changed(value[key])
        return out
    return ["changed", value]


class Mutations(unittest.TestCase):
    """Each name changed on one side only is caught, with both places named."""

    @classmethod
    def setUpClass(cls):
        cls.facts = load_facts()

    def test_changing_either_side_of_any_check_fails_it_naming_both_places(self):
        for what, a, b, _ in CHECKS:
            for side in (a, b):
                with self.subTest(check=what, changed=side):
                    facts = copy.copy(self.facts)
                    facts[side] = Fact(changed(self.facts[side].value), self.facts[side].place)
                    found = [p for p in problems(facts)
                             if self.facts[a].place in p and self.facts[b].place in p]
                    self.assertTrue(found, f"changing {side} ({self.facts[side].place}) went unnoticed")


# A name changed in one file only, and the check that must then fail. The first is the
# mismatch infra had: it created the queue `deliveryrequests`; the functions use `deliveries`.
FILE_EDITS = [
    ("infra/functions.json", '"deliveries"', '"deliveryrequests"', "the queues"),
    ("infra/main.bicep", "param kubernetesNamespace string = 'fabrikam'",
     "param kubernetesNamespace string = 'apps'", "the federated subjects (dev)"),
    ("infra/modules/function.bicep", ":${functionName}'", ":fn-${functionName}'", "the federated subjects (prod)"),
    ("infra/main.bicep", "kube-system:keda-operator", "keda:keda-operator", "KEDA's federated subject"),
    ("infra/main.bicep", "${kubernetesNamespace}:fabrikam-scaler'", "${kubernetesNamespace}:scaler'",
     "the federated subjects (dev)"),
    ("keda/input/prod.json", '"scalerClientId": "', '"scalerClientId": "x', "each function's identity (prod)"),
    ("infra/main.bicep", "'Redis-AccessKey': redis", "'Redis-Key': redis", "the secrets infra can fill"),
    ("infra/modules/queue-access.bicep", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
     "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0", "the role definitions"),
    ("infra/modules/aks.bicep", "webAppRouting: {\n        enabled: true", "webAppRouting: {\n        enabled: false",
     "the app routing add-on"),
    ("keda/dev/package.yaml", "objectName: MongoDb-ConnectionString", "objectName: MongoDb-Connection",
     "each function's secrets (dev)"),
    ("keda/prod/ingress.yaml", "ingressClassName: fabrikam-internal",
     "ingressClassName: nginx", "the app routing add-on (prod)"),
    ("keda/dev/cluster.yaml", "  ingressClassName: fabrikam-internal",
     "  ingressClassName: fabrikam-public", "the app routing add-on (dev)"),
    ("keda/input/dev.json", '"kedaClientId": "', '"kedaClientId": "x', "KEDA's identity (dev)"),
    ("keda/dev/workflow.yaml", "value: deliveries", "value: deliveryrequests", "the queues used (dev)"),
    ("scripts/deploy", "keda-add-ons-http --namespace kube-system", "keda-add-ons-http --namespace keda",
     "the HTTP add-on's namespace (dev)"),
    (".github/workflows/release.yml", "GITOPS_BRANCH: gitops", "GITOPS_BRANCH: deploy", "the GitOps branch"),
]


class FileEdits(unittest.TestCase):
    """The same, on the files: a copy of the tree with one name changed in one file."""

    def test_each_name_changed_in_one_file_fails_its_check_naming_both_places(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            for part in ("infra", "keda", "scripts", ".github"):
                shutil.copytree(ROOT / part, root / part)
            for path, old, new, check in FILE_EDITS:
                with self.subTest(file=path, change=new):
                    original = (root / path).read_text()
                    self.assertIn(old, original, f"{path} no longer says {old!r}; update the edit")
                    (root / path).write_text(original.replace(old, new, 1))
                    try:
                        found = [p for p in problems(load_facts(root)) if p.startswith(check + ":")]
                    finally:
                        (root / path).write_text(original)
                    self.assertTrue(found, f"{check} did not notice {path}")
                    self.assertIn(path.split("/")[0].lstrip("."), found[0])


if __name__ == "__main__":
    unittest.main()
