"""The security-relevant settings of the Bicep templates, read from checkov's Bicep parser
(pycep), so a regression fails CI even though Bicep cannot be compiled here.

Run by scripts/check-infra: python -m unittest discover -s infra/tests
"""

import functools
import re
import unittest
from pathlib import Path

import pycep

INFRA = Path(__file__).resolve().parent.parent

ROLE = {
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Azure Service Bus Data Sender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "Azure Service Bus Data Receiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "Azure Service Bus Data Owner": "090c5cfd-751d-490a-894a-3ce6f1109419",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
}


@functools.lru_cache(maxsize=None)
def parse(relative):
    return pycep.BicepParser().parse(file_path=INFRA / relative)


def body(config):
    """A resource's or module's own config, inside its loop if it has one."""
    return config["config"] if "loop_type" in config else config


def resource(template, name):
    return body(template["resources"][name]["config"])


def module(template, name):
    return body(template["modules"][name]["config"])


def accessor(*path):
    """The parsed form of a property path such as `registry.functions`."""
    node = path[0]
    for part in path[1:]:
        node = {"operator": {"type": "property_accessor", "operands": {"operand_1": node, "operand_2": part}}}
    return node


def loop_array(template, kind, name):
    return template[kind][name]["config"]["loop_type"]["detail"]["array_name"]


def role_definition_id(assignment):
    """The GUID inside subscriptionResourceId('...roleDefinitions', <id>)."""
    return assignment["properties"]["roleDefinitionId"]["function"]["parameters"][1]


class Parsing(unittest.TestCase):
    def test_every_bicep_file_parses(self):
        # checkov reports a file it cannot parse but still exits 0, so this is the gate.
        files = sorted(INFRA.rglob("*.bicep"))
        self.assertGreater(len(files), 5)
        for path in files:
            with self.subTest(path=path.name):
                parse(str(path.relative_to(INFRA)))


class Aks(unittest.TestCase):
    def setUp(self):
        self.aks = resource(parse("modules/aks.bicep"), "aks")["properties"]

    def test_sign_in_is_entra_only(self):
        self.assertIs(self.aks["disableLocalAccounts"], True)
        self.assertIs(self.aks["aadProfile"]["managed"], True)
        self.assertIs(self.aks["aadProfile"]["enableAzureRBAC"], True)

    def test_oidc_issuer_and_workload_identity_are_on(self):
        self.assertIs(self.aks["oidcIssuerProfile"]["enabled"], True)
        self.assertIs(self.aks["securityProfile"]["workloadIdentity"]["enabled"], True)

    def test_keda_csi_rotation_routing_and_policy_add_ons(self):
        self.assertIs(self.aks["workloadAutoScalerProfile"]["keda"]["enabled"], True)
        csi = self.aks["addonProfiles"]["azureKeyvaultSecretsProvider"]
        self.assertIs(csi["enabled"], True)
        self.assertEqual(csi["config"]["enableSecretRotation"], "true")
        self.assertIs(self.aks["ingressProfile"]["webAppRouting"]["enabled"], True)
        self.assertIs(self.aks["addonProfiles"]["azurepolicy"]["enabled"], True)
        self.assertIs(self.aks["addonProfiles"]["kubeDashboard"]["enabled"], False)

    def test_cni_overlay_with_cilium_network_policy(self):
        net = self.aks["networkProfile"]
        self.assertEqual(net["networkPlugin"], "azure")
        self.assertEqual(net["networkPluginMode"], "overlay")
        self.assertEqual(net["networkPolicy"], "cilium")
        self.assertEqual(net["networkDataplane"], "cilium")

    def test_system_pool_runs_critical_add_ons_only(self):
        pools = {p["name"]: p for p in self.aks["agentPoolProfiles"]}
        self.assertEqual(pools["system"]["mode"], "System")
        self.assertIn("CriticalAddonsOnly=true:NoSchedule", pools["system"]["nodeTaints"])
        self.assertEqual(pools["functions"]["mode"], "User")
        self.assertIs(pools["functions"]["enableAutoScaling"], True)

    def test_managed_prometheus_and_container_insights(self):
        self.assertIs(self.aks["azureMonitorProfile"]["metrics"]["enabled"], True)
        self.assertIs(self.aks["addonProfiles"]["omsagent"]["enabled"], True)


class DataServices(unittest.TestCase):
    def test_redis_is_tls_only(self):
        redis = resource(parse("modules/redis.bicep"), "redis")["properties"]
        self.assertIs(redis["enableNonSslPort"], False)
        self.assertEqual(redis["minimumTlsVersion"], "1.2")

    def test_service_bus_takes_entra_tokens_only_and_the_queue_dead_letters(self):
        template = parse("modules/servicebus.bicep")
        namespace = resource(template, "namespace")["properties"]
        self.assertIs(namespace["disableLocalAuth"], True)
        self.assertEqual(namespace["minimumTlsVersion"], "1.2")
        queue = resource(template, "queue")["properties"]
        self.assertIs(queue["deadLetteringOnMessageExpiration"], True)
        self.assertIs(queue["requiresDuplicateDetection"], True)
        main = parse("main.bicep")["modules"]["serviceBus"]["config"]["params"]
        self.assertEqual(main["maxDeliveryCount"], 10)
        self.assertRegex(main["duplicateDetectionWindow"], r"^PT\d+M$")

    def test_cosmos_has_a_database_for_package_and_for_dronescheduler(self):
        params = parse("main.bicep")["modules"]["cosmos"]["config"]["params"]
        self.assertEqual(sorted(params["databases"]), ["dronescheduler", "package"])
        account = resource(parse("modules/cosmos.bicep"), "account")
        self.assertEqual(account["kind"], "MongoDB")
        self.assertEqual(account["properties"]["minimalTlsVersion"], "Tls12")

    def test_registry_has_no_admin_user_and_the_kubelet_pulls(self):
        template = parse("modules/registry.bicep")
        self.assertIs(resource(template, "registry")["properties"]["adminUserEnabled"], False)
        self.assertEqual(template["variables"]["acrPullRoleId"]["value"], ROLE["AcrPull"])


class PerFunction(unittest.TestCase):
    def setUp(self):
        self.template = parse("modules/function.bicep")

    def test_key_vault_uses_rbac_soft_delete_and_purge_protection(self):
        vault = resource(self.template, "vault")["properties"]
        self.assertIs(vault["enableRbacAuthorization"], True)
        self.assertIs(vault["enableSoftDelete"], True)
        self.assertIs(vault["enablePurgeProtection"], True)

    def test_the_identity_reads_its_own_vault_and_nothing_else(self):
        assignment = resource(self.template, "readOwnSecrets")
        self.assertEqual(assignment["scope"], "vault")
        self.assertEqual(
            self.template["variables"]["keyVaultSecretsUserRoleId"]["value"],
            ROLE["Key Vault Secrets User"],
        )
        self.assertEqual(
            assignment["properties"]["principalId"]["operator"]["operands"]["operand_1"],
            "identity",
        )

    def test_the_identity_is_federated_with_the_functions_service_account(self):
        federation = resource(self.template, "federation")["properties"]
        self.assertEqual(
            federation["subject"], "system:serviceaccount:${kubernetesNamespace}:${functionName}"
        )
        self.assertEqual(federation["audiences"], ["api://AzureADTokenExchange"])

    def test_every_function_gets_an_identity_and_vault_with_the_secrets_it_reads(self):
        # The list is generated from the declarations (infra/functions.json); which function
        # reads which secret is checked against them in test_consistency.py.
        main = parse("main.bicep")
        registry = main["variables"]["registry"]["value"]["function"]
        self.assertEqual(registry["type"], "load_json_content")
        self.assertEqual(registry["parameters"]["file_path"], "functions.json")
        self.assertEqual(main["variables"]["functions"]["value"], accessor("registry", "functions"))
        self.assertEqual(loop_array(main, "modules", "function"), "functions")
        params = module(main, "function")["params"]
        self.assertEqual(params["functionName"], accessor("f", "name"))
        self.assertEqual(params["secretNames"], accessor("f", "secrets"))
        # The vault holds only the objects the function declares.
        template = parse("modules/function.bicep")
        self.assertEqual(template["resources"]["secret"]["config"]["loop_type"]["detail"]["array_name"],
                         "secretNames")


class QueueRoles(unittest.TestCase):
    """Least privilege on the queue: ingestion sends, workflow receives, KEDA reads counts."""

    def setUp(self):
        self.modules = parse("main.bicep")["modules"]
        self.roles = parse("modules/queue-access.bicep")["variables"]["roleIds"]["value"]

    def test_role_ids_are_the_built_in_ones(self):
        self.assertEqual(self.roles["Sender"], ROLE["Azure Service Bus Data Sender"])
        self.assertEqual(self.roles["Receiver"], ROLE["Azure Service Bus Data Receiver"])
        self.assertEqual(self.roles["MetricsReader"], ROLE["Azure Service Bus Data Owner"])

    def test_each_function_gets_the_role_its_declaration_asks_for(self):
        # functions.json lists ingestion as Sender and workflow as Receiver, from their
        # declarations (test_consistency.py and host/tests/infra.rs check that).
        main = parse("main.bicep")
        self.assertEqual(loop_array(main, "modules", "functionQueueRoles"), accessor("registry", "queueRoles"))
        params = module(main, "functionQueueRoles")["params"]
        self.assertEqual(params["access"], accessor("r", "role"))
        self.assertEqual(params["queueName"], accessor("r", "queue"))
        # function[r.functionIndex].outputs.principalId, as pycep nests it.
        index = {"operator": {"type": "index_accessor", "operands": {
            "operand_1": "function", "operand_2": accessor("r", "functionIndex")}}}
        self.assertEqual(params["principalId"], {"operator": {"type": "property_accessor", "operands": {
            "operand_1": index, "operand_2": accessor("outputs", "principalId")}}})

    def test_keda_reads_the_queue_with_its_own_federated_identity(self):
        main = parse("main.bicep")
        self.assertEqual(loop_array(main, "modules", "kedaReadsQueue"), accessor("registry", "scaledQueues"))
        keda = module(main, "kedaReadsQueue")["params"]
        self.assertEqual(keda["access"], "MetricsReader")
        federation = resource(parse("main.bicep"), "kedaFederation")["properties"]
        self.assertEqual(federation["subject"], "system:serviceaccount:kube-system:keda-operator")

    def test_roles_are_scoped_to_the_queue_not_the_namespace(self):
        assignment = resource(parse("modules/queue-access.bicep"), "assignment")
        self.assertEqual(assignment["scope"], "queue")


class GitOps(unittest.TestCase):
    """Flux, as the AKS baseline runs it: the cluster pulls its environment's rendered
    manifests and prunes what the branch no longer holds."""

    def setUp(self):
        self.template = parse("modules/gitops.bicep")
        self.config = resource(self.template, "fluxConfiguration")

    def test_the_flux_extension_runs_in_flux_system(self):
        extension = resource(self.template, "flux")
        self.assertEqual(extension["scope"], "aks")
        self.assertEqual(extension["properties"]["extensionType"], "microsoft.flux")
        self.assertEqual(extension["properties"]["scope"]["cluster"]["releaseNamespace"], "flux-system")

    def test_a_git_source_and_a_pruning_kustomization_on_an_interval(self):
        properties = self.config["properties"]
        self.assertEqual(self.config["scope"], "aks")
        self.assertEqual(properties["sourceKind"], "GitRepository")
        self.assertIs(properties["suspend"], False)
        self.assertEqual(properties["gitRepository"]["url"], "repositoryUrl")
        self.assertEqual(properties["gitRepository"]["repositoryRef"]["branch"], "branch")
        self.assertEqual(properties["gitRepository"]["syncIntervalInSeconds"], "syncIntervalInSeconds")
        kustomization = properties["kustomizations"]["fabrikam"]
        self.assertIs(kustomization["prune"], True)
        self.assertEqual(kustomization["path"], "path")
        self.assertEqual(kustomization["syncIntervalInSeconds"], "syncIntervalInSeconds")

    def test_each_environment_reads_its_own_folder_of_the_gitops_branch(self):
        main = parse("main.bicep")
        params = main["modules"]["gitops"]["config"]["params"]
        self.assertEqual(params["path"], "./${environment}")
        self.assertEqual(params["branch"], "gitopsBranch")
        self.assertEqual(main["parameters"]["gitopsBranch"]["default"], "gitops")
        interval = main["parameters"]["gitopsSyncIntervalSeconds"]["default"]
        self.assertTrue(30 <= interval <= 600, interval)
        self.assertIn("secure", str(main["parameters"]["gitopsHttpsToken"]["decorators"]))


class CheckovSkips(unittest.TestCase):
    def test_every_skipped_check_is_explained_in_the_readme(self):
        config = (INFRA / ".checkov.yaml").read_text()
        skipped = set(re.findall(r"^\s+- (CKV_\w+)", config, re.MULTILINE))
        readme = (INFRA / "README.md").read_text()
        explained = set(re.findall(r"^\| `(CKV_\w+)` \|", readme, re.MULTILINE))
        self.assertTrue(skipped)
        self.assertEqual(skipped, explained)


if __name__ == "__main__":
    unittest.main()
