// The AKS cluster: Entra-only sign-in, OIDC issuer and workload identity for the pods, the
// KEDA add-on, the Key Vault Secrets Store CSI add-on with rotation, application routing
// (managed NGINX), Azure Policy, Azure CNI overlay with Cilium network policy, managed
// Prometheus and container insights.

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

resource aks 'Microsoft.ContainerService/managedClusters@2024-09-01' = {
  name: '${namePrefix}-aks'
  location: location
  sku: {
    name: 'Base'
    tier: 'Standard'
  }
  identity: {
    type: 'SystemAssigned'
  }
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
      outboundType: 'loadBalancer'
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
        enableAutoScaling: true
        minCount: userMinCount
        maxCount: userMaxCount
        maxPods: 110
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

output name string = aks.name
output oidcIssuerUrl string = aks.properties.oidcIssuerProfile.issuerURL
output kubeletObjectId string = aks.properties.identityProfile.kubeletidentity.objectId
