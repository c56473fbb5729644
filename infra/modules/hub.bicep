// The hub of the hub-spoke network (the AKS baseline's): Azure Firewall, through which all of
// the spoke's egress leaves, with a policy that allows only the FQDNs the cluster and the
// functions need (infra/README.md lists each with its reason); Azure Bastion for operators;
// and a Log Analytics workspace of its own for the firewall's and Bastion's logs.

param location string
param namePrefix string
@description('The hub\'s address space; the firewall, Bastion and management subnets are carved from it.')
param addressPrefix string = '10.200.0.0/24'
param firewallSubnetPrefix string = '10.200.0.0/26'
param firewallManagementSubnetPrefix string = '10.200.0.64/26'
param bastionSubnetPrefix string = '10.200.0.128/26'
@description('The spoke\'s address space: the only source the firewall rules allow.')
param spokeAddressPrefix string
@description('The cluster\'s node subnet: the source of AKS\'s own egress.')
param nodeSubnetPrefix string
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
@description('Basic in dev (cheaper, enough throughput for a developer cluster), Standard in prod.')
param firewallTier string
@description('Bastion for operators\' access to nodes; dev leaves it out.')
param deployBastion bool
param logRetentionDays int
@description('The Service Bus namespace: dev\'s Standard namespace has no private endpoint, so its traffic leaves through the firewall.')
param serviceBusFqdn string
@description('The registry: dev\'s Basic registry has no private endpoint either.')
param registryName string

var isBasic = firewallTier == 'Basic'
var storageSuffix = environment().suffixes.storage

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-hub-logs'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource hub 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: '${namePrefix}-hub-vnet'
  location: location
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: concat([
      {
        // The names of these subnets are fixed by Azure.
        name: 'AzureFirewallSubnet'
        properties: {
          addressPrefix: firewallSubnetPrefix
        }
      }
      {
        name: 'AzureFirewallManagementSubnet'
        properties: {
          addressPrefix: firewallManagementSubnetPrefix
        }
      }
    ], deployBastion ? [
      {
        name: 'AzureBastionSubnet'
        properties: {
          addressPrefix: bastionSubnetPrefix
        }
      }
    ] : [])
  }
}

resource firewallIp 'Microsoft.Network/publicIPAddresses@2024-01-01' = {
  name: '${namePrefix}-fw-pip'
  location: location
  sku: {
    name: 'Standard'
  }
  zones: [
    '1'
    '2'
    '3'
  ]
  properties: {
    publicIPAllocationMethod: 'Static'
  }
}

// The Basic tier needs a management IP of its own.
resource firewallManagementIp 'Microsoft.Network/publicIPAddresses@2024-01-01' = if (isBasic) {
  name: '${namePrefix}-fw-mgmt-pip'
  location: location
  sku: {
    name: 'Standard'
  }
  zones: [
    '1'
    '2'
    '3'
  ]
  properties: {
    publicIPAllocationMethod: 'Static'
  }
}

// The rules name sources by IP group, so adding a subnet (a second node pool) is one change.
resource spokeNodes 'Microsoft.Network/ipGroups@2024-01-01' = {
  name: '${namePrefix}-ipg-nodes'
  location: location
  properties: {
    ipAddresses: [
      nodeSubnetPrefix
    ]
  }
}

resource spoke 'Microsoft.Network/ipGroups@2024-01-01' = {
  name: '${namePrefix}-ipg-spoke'
  location: location
  properties: {
    ipAddresses: [
      spokeAddressPrefix
    ]
  }
}

// What leaves the spoke, by FQDN; everything else is denied (the firewall's default). The
// list and the reason for each entry are in infra/README.md ("Egress through the
// firewall"); infra/tests/test_security.py holds the two equal. Key Vault, Redis and Cosmos
// DB (and in prod Service Bus and the registry) are reached through private endpoints in the
// spoke, a route of the spoke itself, so no rule names them.
var aksFqdns = [
  // The AKS API server and the cluster's management traffic (AKS's FQDN tag covers the rest
  // of what AKS documents as required).
  '*.hcp.${location}.azmk8s.io'
  'mcr.microsoft.com'
  '*.data.mcr.microsoft.com'
  'mcr-0001.mcr-msedge.net'
  'management.azure.com'
  'login.microsoftonline.com'
  'packages.aks.azure.com'
  'acs-mirror.azureedge.net'
  'packages.microsoft.com'
]
var monitorFqdns = [
  'dc.services.visualstudio.com'
  '*.ods.opinsights.azure.com'
  '*.oms.opinsights.azure.com'
  '*.monitoring.azure.com'
  'global.handler.control.monitor.azure.com'
  '*.handler.control.monitor.azure.com'
  '*.ingest.monitor.azure.com'
  '*.metrics.ingest.monitor.azure.com'
]
var identityFqdns = [
  // Workload identity's token exchange and the CSI driver's sign-in.
  'login.microsoftonline.com'
]
var registryFqdns = [
  // Dev's Basic registry: its login server, and the storage its layers are served from.
  '${registryName}.azurecr.io'
  '*.blob.${storageSuffix}'
]
var fluxFqdns = [
  // GitOps: Flux reads the rendered manifests from GitHub.
  'github.com'
  'api.github.com'
  'codeload.github.com'
]

resource policy 'Microsoft.Network/firewallPolicies@2024-01-01' = {
  name: '${namePrefix}-fw-policy'
  location: location
  properties: {
    sku: {
      tier: firewallTier
    }
    threatIntelMode: isBasic ? 'Alert' : 'Deny'
  }
}

resource networkRules 'Microsoft.Network/firewallPolicies/ruleCollectionGroups@2024-01-01' = {
  parent: policy
  name: 'network'
  properties: {
    priority: 200
    ruleCollections: [
      {
        ruleCollectionType: 'FirewallPolicyFilterRuleCollection'
        name: 'aks-network'
        priority: 200
        action: {
          type: 'Allow'
        }
        rules: [
          {
            // The nodes' tunnel to the API server (konnectivity) and time.
            ruleType: 'NetworkRule'
            name: 'aks-tunnel-udp'
            ipProtocols: [
              'UDP'
            ]
            sourceIpGroups: [
              spokeNodes.id
            ]
            destinationAddresses: [
              'AzureCloud.${location}'
            ]
            destinationPorts: [
              '1194'
            ]
          }
          {
            ruleType: 'NetworkRule'
            name: 'aks-tunnel-tcp'
            ipProtocols: [
              'TCP'
            ]
            sourceIpGroups: [
              spokeNodes.id
            ]
            destinationAddresses: [
              'AzureCloud.${location}'
            ]
            destinationPorts: [
              '9000'
            ]
          }
          {
            ruleType: 'NetworkRule'
            name: 'ntp'
            ipProtocols: [
              'UDP'
            ]
            sourceIpGroups: [
              spokeNodes.id
            ]
            destinationFqdns: [
              'ntp.ubuntu.com'
            ]
            destinationPorts: [
              '123'
            ]
          }
          {
            // AMQP 1.0 over TLS to Service Bus: a Standard namespace (dev) has no private
            // endpoint, so ingestion, workflow and KEDA reach it here.
            ruleType: 'NetworkRule'
            name: 'service-bus-amqp'
            ipProtocols: [
              'TCP'
            ]
            sourceIpGroups: [
              spoke.id
            ]
            destinationAddresses: [
              'ServiceBus.${location}'
            ]
            destinationPorts: [
              '5671'
              '443'
            ]
          }
        ]
      }
    ]
  }
}

resource applicationRules 'Microsoft.Network/firewallPolicies/ruleCollectionGroups@2024-01-01' = {
  parent: policy
  name: 'application'
  dependsOn: [
    networkRules
  ]
  properties: {
    priority: 300
    ruleCollections: [
      {
        ruleCollectionType: 'FirewallPolicyFilterRuleCollection'
        name: 'egress'
        priority: 300
        action: {
          type: 'Allow'
        }
        rules: [
          {
            ruleType: 'ApplicationRule'
            name: 'aks'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
            ]
            sourceIpGroups: [
              spokeNodes.id
            ]
            targetFqdns: aksFqdns
          }
          {
            ruleType: 'ApplicationRule'
            name: 'azure-monitor'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
            ]
            sourceIpGroups: [
              spoke.id
            ]
            targetFqdns: monitorFqdns
          }
          {
            ruleType: 'ApplicationRule'
            name: 'entra'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
            ]
            sourceIpGroups: [
              spoke.id
            ]
            targetFqdns: identityFqdns
          }
          {
            ruleType: 'ApplicationRule'
            name: 'container-registry'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
            ]
            sourceIpGroups: [
              spokeNodes.id
            ]
            targetFqdns: registryFqdns
          }
          {
            ruleType: 'ApplicationRule'
            name: 'service-bus'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
            ]
            sourceIpGroups: [
              spoke.id
            ]
            targetFqdns: [
              serviceBusFqdn
            ]
          }
          {
            ruleType: 'ApplicationRule'
            name: 'gitops'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
            ]
            sourceIpGroups: [
              spokeNodes.id
            ]
            targetFqdns: fluxFqdns
          }
        ]
      }
    ]
  }
}

resource firewall 'Microsoft.Network/azureFirewalls@2024-01-01' = {
  name: '${namePrefix}-fw'
  location: location
  zones: [
    '1'
    '2'
    '3'
  ]
  dependsOn: [
    applicationRules
  ]
  properties: {
    sku: {
      name: 'AZFW_VNet'
      tier: firewallTier
    }
    firewallPolicy: {
      id: policy.id
    }
    ipConfigurations: [
      {
        name: 'egress'
        properties: {
          subnet: {
            id: resourceId('Microsoft.Network/virtualNetworks/subnets', hub.name, 'AzureFirewallSubnet')
          }
          publicIPAddress: {
            id: firewallIp.id
          }
        }
      }
    ]
    managementIpConfiguration: isBasic ? {
      name: 'management'
      properties: {
        subnet: {
          id: resourceId('Microsoft.Network/virtualNetworks/subnets', hub.name, 'AzureFirewallManagementSubnet')
        }
        publicIPAddress: {
          id: firewallManagementIp.id
        }
      }
    } : null
  }
}

resource firewallDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-hub-logs'
  scope: firewall
  properties: {
    workspaceId: logs.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

resource bastionIp 'Microsoft.Network/publicIPAddresses@2024-01-01' = if (deployBastion) {
  name: '${namePrefix}-bastion-pip'
  location: location
  sku: {
    name: 'Standard'
  }
  zones: [
    '1'
    '2'
    '3'
  ]
  properties: {
    publicIPAllocationMethod: 'Static'
  }
}

resource bastion 'Microsoft.Network/bastionHosts@2024-01-01' = if (deployBastion) {
  name: '${namePrefix}-bastion'
  location: location
  sku: {
    name: 'Standard'
  }
  properties: {
    ipConfigurations: [
      {
        name: 'bastion'
        properties: {
          subnet: {
            id: resourceId('Microsoft.Network/virtualNetworks/subnets', hub.name, 'AzureBastionSubnet')
          }
          publicIPAddress: {
            id: bastionIp.id
          }
        }
      }
    ]
  }
}

resource bastionDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (deployBastion) {
  name: 'to-hub-logs'
  scope: bastion
  properties: {
    workspaceId: logs.id
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

output vnetId string = hub.id
output vnetName string = hub.name
output firewallPrivateIp string = firewall.properties.ipConfigurations[0].properties.privateIPAddress
output logAnalyticsId string = logs.id
// The lists the application rules allow, for the README check.
output egressFqdns array = union(aksFqdns, monitorFqdns, identityFqdns, registryFqdns, fluxFqdns, [
  serviceBusFqdn
])
