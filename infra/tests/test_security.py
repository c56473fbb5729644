"""The security-relevant settings of the Bicep templates, read from checkov's Bicep parser
(pycep), so a regression fails CI even though Bicep cannot be compiled here.

Run by scripts/check-infra: python -m unittest discover -s infra/tests
"""

import functools
import json
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


def dotted(node):
    """`a.b.c` for a parsed property path, the node itself for anything else."""
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "property_accessor":
        operands = node["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return node


def conditional(node):
    """(condition, true value, false value) of a parsed `c ? a : b`."""
    operands = node["operator"]["operands"]
    return operands["condition"], operands["true_value"], operands["false_value"]


def parameters(environment):
    path = INFRA / f"main.{environment}.parameters.json"
    return {k: v["value"] for k, v in json.loads(path.read_text())["parameters"].items()}


class Egress(unittest.TestCase):
    """Everything the nodes send leaves through the hub's firewall."""

    def test_the_cluster_routes_egress_itself_from_the_spokes_node_subnet(self):
        aks = resource(parse("modules/aks.bicep"), "aks")["properties"]
        self.assertEqual(aks["networkProfile"]["outboundType"], "userDefinedRouting")
        for pool in aks["agentPoolProfiles"]:
            self.assertEqual(pool["vnetSubnetID"], "nodeSubnetId", pool["name"])
        main = parse("main.bicep")
        self.assertEqual(dotted(module(main, "aks")["params"]["nodeSubnetId"]), "spoke.outputs.nodeSubnetId")

    def test_the_node_subnets_default_route_is_the_firewall(self):
        spoke = parse("modules/spoke.bicep")
        routes = resource(spoke, "egress")["properties"]["routes"]
        self.assertEqual(len(routes), 1)
        route = routes[0]["properties"]
        self.assertEqual(route["addressPrefix"], "0.0.0.0/0")
        self.assertEqual(route["nextHopType"], "VirtualAppliance")
        self.assertEqual(route["nextHopIpAddress"], "firewallPrivateIp")
        subnets = {s["name"]: s["properties"] for s in resource(spoke, "spoke")["properties"]["subnets"]}
        self.assertEqual(dotted(subnets["snet-nodes"]["routeTable"]["id"]), "egress.id")
        self.assertIs(resource(spoke, "egress")["properties"]["disableBgpRoutePropagation"], True)
        main = parse("main.bicep")
        self.assertEqual(dotted(module(main, "spoke")["params"]["firewallPrivateIp"]), "hub.outputs.firewallPrivateIp")

    def test_the_spoke_and_the_hub_are_peered_both_ways(self):
        spoke = parse("modules/spoke.bicep")
        self.assertEqual(dotted(resource(spoke, "toHub")["properties"]["remoteVirtualNetwork"]["id"]), "hubVnetId")
        self.assertEqual(dotted(resource(spoke, "fromHub")["properties"]["remoteVirtualNetwork"]["id"]), "spoke.id")

    def test_the_firewall_allows_only_listed_fqdns_each_documented(self):
        hub = parse("modules/hub.bicep")
        collections = resource(hub, "applicationRules")["properties"]["ruleCollections"]
        self.assertEqual([c["action"]["type"] for c in collections], ["Allow"])
        variables = hub["variables"]
        fqdns = set()
        for rule in collections[0]["rules"]:
            targets = rule["targetFqdns"]
            if isinstance(targets, str):
                targets = variables[targets]["value"]
            for fqdn in targets:
                self.assertNotIn(fqdn, ("*", "*.com", "*.net"), rule["name"])
                fqdns.add(fqdn)
            for protocol in rule["protocols"]:
                self.assertEqual((protocol["protocolType"], protocol["port"]), ("Https", 443), rule["name"])
        readme = (INFRA / "README.md").read_text()
        documented = set(re.findall(r"^\| `([^`]+)` \| \S", readme.split("## Egress through the firewall")[1].split("\n## ")[0], re.MULTILINE))
        self.assertEqual(fqdns, documented, "infra/README.md's FQDN table and hub.bicep's application rules")
        self.assertEqual(resource(hub, "policy")["properties"]["threatIntelMode"]["operator"]["operands"]["false_value"], "Deny")
        # Sources are IP groups, not addresses written into each rule.
        for rule in collections[0]["rules"]:
            self.assertIn("sourceIpGroups", rule)
            self.assertNotIn("sourceAddresses", rule)


class PrivateAccess(unittest.TestCase):
    """Public network access is off in prod: every PaaS dependency through a private endpoint."""

    def test_data_stores_and_vaults_have_no_public_endpoint(self):
        self.assertEqual(resource(parse("modules/redis.bicep"), "redis")["properties"]["publicNetworkAccess"], "Disabled")
        self.assertEqual(resource(parse("modules/cosmos.bicep"), "account")["properties"]["publicNetworkAccess"], "Disabled")
        vault = resource(parse("modules/function.bicep"), "vault")["properties"]
        self.assertEqual(vault["publicNetworkAccess"], "Disabled")
        self.assertEqual(vault["networkAcls"]["defaultAction"], "Deny")
        ingress_vault = resource(parse("modules/ingress.bicep"), "vault")["properties"]
        self.assertEqual(ingress_vault["publicNetworkAccess"], "Disabled")

    def test_prods_service_bus_is_premium_and_private(self):
        self.assertEqual(parameters("prod")["serviceBusSku"], "Premium")
        main = parse("main.bicep")
        self.assertEqual(main["variables"]["serviceBusPrivate"]["value"]["operator"]["type"], "equals")
        access = module(main, "serviceBus")["params"]["publicNetworkAccess"]
        self.assertEqual(access["operator"]["type"], "not")
        namespace = resource(parse("modules/servicebus.bicep"), "namespace")["properties"]
        self.assertEqual(conditional(namespace["publicNetworkAccess"])[1:], ("Enabled", "Disabled"))
        self.assertEqual(main["modules"]["serviceBusEndpoint"]["config"]["condition"], "serviceBusPrivate")

    def test_prods_registry_is_premium_and_has_no_public_endpoint(self):
        """Premium (prod) turns the public endpoint off; nothing pushes there (the release
        imports through Resource Manager, which needs the trusted-services bypass)."""
        self.assertEqual(parameters("prod")["registrySku"], "Premium")
        main = parse("main.bicep")
        self.assertEqual(main["variables"]["registryPrivate"]["value"]["operator"]["type"], "equals")
        access = module(main, "registry")["params"]["publicAccess"]
        self.assertEqual(conditional(access), ("registryPrivate", "Disabled", "Enabled"))
        template = parse("modules/registry.bicep")
        self.assertEqual(template["parameters"]["publicAccess"]["default"], "Disabled")
        registry = resource(template, "registry")["properties"]
        self.assertEqual(registry["publicNetworkAccess"], "publicAccess")
        self.assertEqual(registry["networkRuleBypassOptions"], "AzureServices")
        condition, rules, _ = conditional(registry["networkRuleSet"])
        self.assertEqual(condition, "premium")
        self.assertEqual((rules["defaultAction"], rules["ipRules"]), ("Deny", []))
        self.assertIs(registry["adminUserEnabled"], False)
        self.assertNotIn("pushIpRanges", template["parameters"])
        self.assertEqual(main["modules"]["registryEndpoint"]["config"]["condition"], "registryPrivate")

    def test_each_dependency_has_a_private_endpoint_in_the_endpoints_subnet(self):
        main = parse("main.bicep")
        expected = {
            "redisEndpoint": ("redisCache", "privateDns.outputs.redisZoneId", "redis.outputs.id"),
            "cosmosEndpoint": ("MongoDB", "privateDns.outputs.cosmosZoneId", "cosmos.outputs.id"),
            "serviceBusEndpoint": ("namespace", "privateDns.outputs.serviceBusZoneId", "serviceBus.outputs.namespaceId"),
            "registryEndpoint": ("registry", "privateDns.outputs.registryZoneId", "registry.outputs.id"),
        }
        for name, (group, zone, target) in expected.items():
            with self.subTest(endpoint=name):
                config = main["modules"][name]["config"]
                params = (config.get("config") or config)["params"]
                self.assertEqual(params["groupId"], group)
                self.assertEqual(dotted(params["zoneId"]), zone)
                self.assertEqual(dotted(params["resourceId"]), target)
                self.assertEqual(dotted(params["subnetId"]), "spoke.outputs.endpointsSubnetId")
        vaults = main["modules"]["vaultEndpoints"]
        self.assertEqual(vaults["config"]["loop_type"]["detail"]["array_name"], "functions")
        params = body(vaults["config"])["params"]
        self.assertEqual(params["groupId"], "vault")
        self.assertEqual(dotted(params["zoneId"]), "privateDns.outputs.keyVaultZoneId")


class PrivateDns(unittest.TestCase):
    def test_every_zone_is_linked_to_the_spoke_and_the_hub(self):
        dns = parse("modules/private-dns.bicep")
        zones = {name: r["config"]["name"] for name, r in dns["resources"].items()}
        self.assertEqual(sorted(zones), ["cosmos", "keyVault", "redis", "registry", "serviceBus"])
        links = dns["modules"]["links"]["config"]
        linked = [dotted(n) for n in links["loop_type"]["detail"]["array_name"]]
        self.assertEqual(sorted(linked), sorted(f"names.{k}" for k in zones))
        self.assertEqual(body(links)["params"]["vnetIds"], "vnetIds")
        link = resource(parse("modules/private-dns-links.bicep"), "link")
        self.assertIs(link["properties"]["registrationEnabled"], False)
        self.assertEqual(dotted(link["properties"]["virtualNetwork"]["id"]), "vnetId")
        main = parse("main.bicep")
        ids = [dotted(v) for v in module(main, "privateDns")["params"]["vnetIds"]]
        self.assertEqual(ids, ["spoke.outputs.vnetId", "hub.outputs.vnetId"])


class Ingress(unittest.TestCase):
    def setUp(self):
        self.template = parse("modules/ingress.bicep")

    def test_the_waf_is_on_in_prevention_mode_with_owasp_and_a_rate_limit(self):
        waf = resource(self.template, "waf")["properties"]
        self.assertEqual(waf["policySettings"]["mode"], "Prevention")
        self.assertEqual(waf["policySettings"]["state"], "Enabled")
        sets = {r["ruleSetType"]: r["ruleSetVersion"] for r in waf["managedRules"]["managedRuleSets"]}
        self.assertEqual(sets["OWASP"], "3.2")
        limit = next(r for r in waf["customRules"] if r["ruleType"] == "RateLimitRule")
        self.assertEqual(limit["action"], "Block")
        self.assertEqual(limit["rateLimitThreshold"], "rateLimitPerMinute")
        self.assertEqual(limit["groupByUserSession"][0]["groupByVariables"][0]["variableName"], "ClientAddr")

    def test_the_gateway_is_waf_v2_with_tls_from_the_vault_to_the_internal_ingress(self):
        gateway = resource(self.template, "gateway")["properties"]
        self.assertEqual(gateway["sku"]["tier"], "WAF_v2")
        self.assertEqual(dotted(gateway["firewallPolicy"]["id"]), "waf.id")
        self.assertIn("secrets/", gateway["sslCertificates"][0]["properties"]["keyVaultSecretId"])
        self.assertEqual(gateway["httpListeners"][0]["properties"]["protocol"], "Https")
        backend = gateway["backendAddressPools"][0]["properties"]["backendAddresses"][0]
        self.assertEqual(backend["ipAddress"], "ingressPrivateIp")

    def test_the_certificate_is_a_secure_parameter_written_into_the_private_vault(self):
        main = parse("main.bicep")
        self.assertIn("secure", str(main["parameters"]["ingressCertificatePfxBase64"]["decorators"]))
        self.assertNotIn("ingressCertificatePfxBase64", (INFRA / "main.prod.parameters.json").read_text())
        secret = resource(self.template, "certificate")
        self.assertEqual(secret["properties"]["contentType"], "application/x-pkcs12")
        self.assertTrue(secret["properties"]["attributes"]["exp"])
        self.assertIn("certificate", [dotted(d) for d in resource(self.template, "gateway")["dependsOn"]])

    def test_the_gateway_and_app_routing_may_read_the_certificate(self):
        readers = {dotted(resource(self.template, r)["properties"]["principalId"]) for r in
                   ("gatewayReadsCertificate", "appRoutingReadsCertificate")}
        self.assertEqual(readers, {"identity.properties.principalId", "appRoutingPrincipalId"})
        roles = {r: resource(self.template, r)["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
                 for r in ("gatewayReadsCertificate", "appRoutingReadsCertificate")}
        self.assertEqual(roles, {"gatewayReadsCertificate": "keyVaultSecretsUserRoleId",
                                 "appRoutingReadsCertificate": "keyVaultCertificateUserRoleId"})
        main = parse("main.bicep")
        self.assertEqual(dotted(module(main, "ingress")["params"]["appRoutingPrincipalId"]),
                         "aks.outputs.appRoutingPrincipalId")


class Diagnostics(unittest.TestCase):
    def test_control_plane_vault_bus_firewall_and_gateway_log_to_log_analytics(self):
        expected = {
            ("modules/aks.bicep", "controlPlaneLogs"): "aks",
            ("modules/function.bicep", "audit"): "vault",
            ("modules/servicebus.bicep", "diagnostics"): "namespace",
            ("modules/hub.bicep", "firewallDiagnostics"): "firewall",
            ("modules/ingress.bicep", "gatewayDiagnostics"): "gateway",
        }
        for (path, name), scope in expected.items():
            with self.subTest(setting=name):
                template = parse(path)
                setting = template["resources"][name]
                self.assertEqual(setting["type"], "Microsoft.Insights/diagnosticSettings")
                config = body(setting["config"])
                self.assertEqual(config["scope"], scope)
                self.assertTrue(config["properties"]["workspaceId"])
                self.assertTrue(all(log["enabled"] for log in config["properties"]["logs"]))
        aks_logs = resource(parse("modules/aks.bicep"), "controlPlaneLogs")["properties"]["logs"]
        self.assertIn("kube-audit-admin", [log["category"] for log in aks_logs])


class Alerts(unittest.TestCase):
    def test_the_rule_groups_come_from_the_rule_file_and_notify_the_action_group(self):
        template = parse("modules/alerts.bicep")
        self.assertIn("prometheus-rules.json", str(template["variables"]["rules"]["value"]))
        groups = template["resources"]["ruleGroups"]
        self.assertEqual(groups["type"], "Microsoft.AlertsManagement/prometheusRuleGroups")
        self.assertEqual(dotted(groups["config"]["loop_type"]["detail"]["array_name"]), "rules.groups")
        rule = body(groups["config"])["properties"]["rules"]
        self.assertEqual(dotted(body(rule)["actions"][0]["actionGroupId"]), "oncall.id")

    def test_the_rules_cover_what_operations_needs(self):
        rules = json.loads((INFRA / "alerts" / "prometheus-rules.json").read_text())
        expressions = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
        for needed in ('outcome="dead_lettered"', 'status_class="5xx"', 'outcome="abandoned"',
                       "fabrikam_queue_locks_lost_total", "fabrikam_downstream_circuit_open",
                       'fabrikam_secret_reloads_total{outcome="failed"}', 'phase="triggers_ready"',
                       "kube_pod_container_status_restarts_total", "keda_scaler_detail_errors_total"):
            self.assertIn(needed, expressions)

    def test_nodes_cpu_and_memory_have_metric_alerts(self):
        template = parse("modules/alerts.bicep")
        metrics = {resource(template, name)["properties"]["criteria"]["allOf"][0]["metricName"]
                   for name in ("nodeCpu", "nodeMemory")}
        self.assertEqual(metrics, {"node_cpu_usage_percentage", "node_memory_working_set_percentage"})
        self.assertIn("alerts", parse("main.bicep")["modules"])


class ZoneRedundancy(unittest.TestCase):
    def test_prod_replicates_redis_cosmos_and_the_registry_across_zones(self):
        self.assertIs(parameters("prod")["zoneRedundant"], True)
        self.assertIs(parameters("dev")["zoneRedundant"], False)
        self.assertEqual(parameters("prod")["redisSku"], "Premium")
        redis = resource(parse("modules/redis.bicep"), "redis")
        self.assertEqual(conditional(redis["zones"])[:2], ("zoneRedundant", ["1", "2", "3"]))
        cosmos = resource(parse("modules/cosmos.bicep"), "account")["properties"]
        self.assertEqual(cosmos["locations"][0]["isZoneRedundant"], "zoneRedundant")
        registry = resource(parse("modules/registry.bicep"), "registry")["properties"]
        self.assertEqual(conditional(registry["zoneRedundancy"])[:2], ("zoneRedundant", "Enabled"))
        main = parse("main.bicep")
        for name in ("redis", "cosmos", "registry"):
            self.assertIn("zoneRedundant", str(module(main, name)["params"]["zoneRedundant"]))


class Operations(unittest.TestCase):
    def test_free_tier_in_dev_standard_in_prod_and_a_user_pool_that_scales_to_zero_in_dev(self):
        self.assertEqual((parameters("dev")["aksSkuTier"], parameters("prod")["aksSkuTier"]), ("Free", "Standard"))
        self.assertEqual(resource(parse("modules/aks.bicep"), "aks")["sku"]["tier"], "skuTier")
        self.assertEqual(parameters("dev")["userMinCount"], 0)
        self.assertGreaterEqual(parameters("prod")["userMinCount"], 3)

    def test_upgrades_happen_in_a_weekly_maintenance_window(self):
        template = parse("modules/aks.bicep")
        names = {resource(template, r)["name"] for r in ("clusterUpgrades", "nodeOsUpgrades")}
        self.assertEqual(names, {"aksManagedAutoUpgradeSchedule", "aksManagedNodeOSUpgradeSchedule"})
        for r in ("clusterUpgrades", "nodeOsUpgrades"):
            window = resource(template, r)["properties"]["maintenanceWindow"]
            self.assertEqual(window["schedule"]["weekly"]["intervalWeeks"], 1)

    def test_policy_audits_the_restricted_standard_and_denies_foreign_images(self):
        template = parse("modules/policy.bicep")
        restricted = resource(template, "restricted")["properties"]
        self.assertEqual(dotted(restricted["policyDefinitionId"]), "restrictedInitiativeId")
        self.assertIn("42b8ef37-b724-4e24-bbc8-7a7708edfe00", template["variables"]["restrictedInitiativeId"]["value"])
        self.assertEqual(restricted["parameters"]["effect"]["value"], "Audit")
        images = resource(template, "onlyOurImages")["properties"]
        self.assertIn("febd0533-8e55-448f-b837-bd0e06f16469", template["variables"]["allowedImagesPolicyId"]["value"])
        self.assertEqual(images["parameters"]["effect"]["value"], "Deny")
        self.assertIn("registryLoginServer", str(images["parameters"]["allowedContainerImagesRegex"]["value"]))


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
