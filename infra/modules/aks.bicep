// The AKS cluster: Entra-only sign-in, OIDC issuer and workload identity for the pods, the
// KEDA add-on, the Key Vault Secrets Store CSI add-on with rotation, application routing
// (managed NGINX), Azure Policy, Azure CNI overlay with Cilium network policy, managed
// Prometheus and container insights. Its nodes sit in the spoke's node subnet and all of their
// egress goes through the hub's firewall (userDefinedRouting); the control plane's logs go to
// Log Analytics; upgrades happen in a maintenance window.

param location string
param namePrefix string
param kubernetesVersion string
@description('Entra group whose members administer the cluster (Azure RBAC for Kubernetes).')
param adminGroupObjectId string
param systemNodeCount int
param systemVmSize string
param userVmSize string
param userMinCount int
param userMaxCount int
@description('Public IP ranges (CIDR) allowed to reach the API server: the admins\' and the deploying pipeline\'s egress.')
param apiServerAuthorizedIpRanges array
param logAnalyticsId string
param azureMonitorWorkspaceId string
@allowed([
  'Free'
  'Standard'
])
@description('Free in dev; Standard (the uptime SLA) in prod.')
param skuTier string
@description('The spoke\'s node subnet; its route table sends egress to the firewall.')
param nodeSubnetId string
@description('The spoke (the control plane\'s identity manages its load balancers and routes there).')
param spokeVnetName string
@description('When cluster and node OS upgrades may happen: a weekly window.')
param maintenanceDay string = 'Sunday'
param maintenanceStartHour int = 2
param maintenanceDurationHours int = 4

var networkContributorRoleId = '4d97b98b-1d4f-4787-a291-c67834d212e7'

// The control plane's identity exists before the cluster, so it can be given the spoke (its
// route table and subnets) before AKS checks them at creation, as userDefinedRouting needs.
resource controlPlane 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-aks-id'
  location: location
}

resource spoke 'Microsoft.Network/virtualNetworks@2024-01-01' existing = {
  name: spokeVnetName
}

resource controlPlaneManagesSpoke 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(spoke.id, controlPlane.id, networkContributorRoleId)
  scope: spoke
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', networkContributorRoleId)
    principalId: controlPlane.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource aks 'Microsoft.ContainerService/managedClusters@2024-09-01' = {
  name: '${namePrefix}-aks'
  location: location
  sku: {
    name: 'Base'
    tier: skuTier
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${controlPlane.id}': {}
    }
  }
  dependsOn: [
    controlPlaneManagesSpoke
  ]
  properties: {
    kubernetesVersion: kubernetesVersion
    dnsPrefix: '${namePrefix}-aks'
    // Only Entra identities sign in; no static kubeconfig credentials.
    disableLocalAccounts: true
    enableRBAC: true
    aadProfile: {
      managed: true
      enableAzureRBAC: true
      adminGroupObjectIDs: [
        adminGroupObjectId
      ]
    }
    oidcIssuerProfile: {
      enabled: true
    }
    securityProfile: {
      workloadIdentity: {
        enabled: true
      }
      imageCleaner: {
        enabled: true
        intervalHours: 48
      }
      defender: {
        logAnalyticsWorkspaceResourceId: logAnalyticsId
        securityMonitoring: {
          enabled: true
        }
      }
    }
    workloadAutoScalerProfile: {
      keda: {
        enabled: true
      }
    }
    ingressProfile: {
      webAppRouting: {
        enabled: true
      }
    }
    networkProfile: {
      networkPlugin: 'azure'
      networkPluginMode: 'overlay'
      networkDataplane: 'cilium'
      networkPolicy: 'cilium'
      loadBalancerSku: 'standard'
      // Every packet out of the nodes goes to the hub's firewall (the spoke's route table).
      outboundType: 'userDefinedRouting'
      podCidr: '10.244.0.0/16'
      serviceCidr: '172.16.0.0/16'
      dnsServiceIP: '172.16.0.10'
    }
    apiServerAccessProfile: {
      authorizedIPRanges: apiServerAuthorizedIpRanges
    }
    autoUpgradeProfile: {
      upgradeChannel: 'patch'
      nodeOSUpgradeChannel: 'NodeImage'
    }
    autoScalerProfile: {
      expander: 'least-waste'
      'scale-down-unneeded-time': '5m'
      'scale-down-delay-after-add': '5m'
      'skip-nodes-with-system-pods': 'true'
      'balance-similar-node-groups': 'true'
    }
    azureMonitorProfile: {
      metrics: {
        enabled: true
      }
    }
    addonProfiles: {
      kubeDashboard: {
        enabled: false
      }
      azureKeyvaultSecretsProvider: {
        enabled: true
        config: {
          enableSecretRotation: 'true'
          rotationPollInterval: '2m'
        }
      }
      azurepolicy: {
        enabled: true
        config: {
          version: 'v2'
        }
      }
      omsagent: {
        enabled: true
        config: {
          logAnalyticsWorkspaceResourceID: logAnalyticsId
        }
      }
    }
    agentPoolProfiles: [
      {
        name: 'system'
        mode: 'System'
        count: systemNodeCount
        vmSize: systemVmSize
        osType: 'Linux'
        osSKU: 'AzureLinux'
        type: 'VirtualMachineScaleSets'
        availabilityZones: [
          '1'
          '2'
          '3'
        ]
        maxPods: 110
        vnetSubnetID: nodeSubnetId
        // Ephemeral OS disks: on the VM's local disk, faster and nothing to leak at rest.
        osDiskType: 'Ephemeral'
        osDiskSizeGB: 64
        // Only critical add-ons (CoreDNS, KEDA, CSI...) run on the system pool.
        nodeTaints: [
          'CriticalAddonsOnly=true:NoSchedule'
        ]
        enableEncryptionAtHost: true
      }
      {
        name: 'functions'
        mode: 'User'
        vmSize: userVmSize
        osType: 'Linux'
        osSKU: 'AzureLinux'
        type: 'VirtualMachineScaleSets'
        availabilityZones: [
          '1'
          '2'
          '3'
        ]
        // Dev's may scale to zero nodes when no function runs.
        enableAutoScaling: true
        minCount: userMinCount
        maxCount: userMaxCount
        maxPods: 110
        vnetSubnetID: nodeSubnetId
        osDiskType: 'Ephemeral'
        osDiskSizeGB: 64
        enableEncryptionAtHost: true
      }
    ]
  }
}

// Managed Prometheus: a data collection endpoint and rule sending the cluster's metrics to
// the Azure Monitor workspace, associated with the cluster.
resource collectionEndpoint 'Microsoft.Insights/dataCollectionEndpoints@2022-06-01' = {
  name: '${namePrefix}-prometheus-dce'
  location: location
  kind: 'Linux'
  properties: {}
}

resource collectionRule 'Microsoft.Insights/dataCollectionRules@2022-06-01' = {
  name: '${namePrefix}-prometheus-dcr'
  location: location
  kind: 'Linux'
  properties: {
    dataCollectionEndpointId: collectionEndpoint.id
    dataSources: {
      prometheusForwarder: [
        {
          name: 'PrometheusDataSource'
          streams: [
            'Microsoft-PrometheusMetrics'
          ]
          labelIncludeFilter: {}
        }
      ]
    }
    destinations: {
      monitoringAccounts: [
        {
          accountResourceId: azureMonitorWorkspaceId
          name: 'MonitoringAccount'
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          'Microsoft-PrometheusMetrics'
        ]
        destinations: [
          'MonitoringAccount'
        ]
      }
    ]
  }
}

resource collectionRuleAssociation 'Microsoft.Insights/dataCollectionRuleAssociations@2022-06-01' = {
  name: '${namePrefix}-prometheus-dcra'
  scope: aks
  properties: {
    dataCollectionRuleId: collectionRule.id
  }
}

// Cluster and node OS upgrades only in the weekly window.
resource clusterUpgrades 'Microsoft.ContainerService/managedClusters/maintenanceConfigurations@2024-09-01' = {
  parent: aks
  name: 'aksManagedAutoUpgradeSchedule'
  properties: {
    maintenanceWindow: {
      schedule: {
        weekly: {
          dayOfWeek: maintenanceDay
          intervalWeeks: 1
        }
      }
      durationHours: maintenanceDurationHours
      startTime: '${padLeft(string(maintenanceStartHour), 2, '0')}:00'
      utcOffset: '+00:00'
    }
  }
}

resource nodeOsUpgrades 'Microsoft.ContainerService/managedClusters/maintenanceConfigurations@2024-09-01' = {
  parent: aks
  name: 'aksManagedNodeOSUpgradeSchedule'
  properties: {
    maintenanceWindow: {
      schedule: {
        weekly: {
          dayOfWeek: maintenanceDay
          intervalWeeks: 1
        }
      }
      durationHours: maintenanceDurationHours
      startTime: '${padLeft(string(maintenanceStartHour), 2, '0')}:00'
      utcOffset: '+00:00'
    }
  }
}

// The control plane's logs, the API server's audit trail first.
resource controlPlaneLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'control-plane-to-logs'
  scope: aks
  properties: {
    workspaceId: logAnalyticsId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'kube-audit-admin'
        enabled: true
      }
      {
        category: 'kube-apiserver'
        enabled: true
      }
      {
        category: 'kube-controller-manager'
        enabled: true
      }
      {
        category: 'kube-scheduler'
        enabled: true
      }
      {
        category: 'cluster-autoscaler'
        enabled: true
      }
      {
        category: 'guard'
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

output id string = aks.id
output name string = aks.name
output oidcIssuerUrl string = aks.properties.oidcIssuerProfile.issuerURL
output kubeletObjectId string = aks.properties.identityProfile.kubeletidentity.objectId
// The app-routing add-on's identity, which reads the ingress certificate.
output appRoutingPrincipalId string = aks.properties.ingressProfile.webAppRouting.identity.objectId
