// The container registry the function images come from; the cluster's kubelet identity
// pulls with AcrPull, no admin user. Prod's is Premium, zone redundant, private: the nodes
// pull through its private endpoint (main.bicep) and nothing pushes to it. The release
// imports dev's tested digests into it with `az acr import` (scripts/import-images), which
// the registry service runs itself through Resource Manager, so no client ever reaches its
// data endpoint. Dev's Basic registry (no private endpoints in that tier) takes the pushes.

param location string
param namePrefix string
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string
param kubeletObjectId string
param zoneRedundant bool
// Private unless the caller says otherwise: main.bicep opens it only for dev's Basic registry,
// which cannot close it (a tier without private endpoints). Not named publicNetworkAccess:
// checkov links parameters of one name across files, and servicebus.bicep has one.
@description('The public endpoint: Disabled (Premium, prod), or Enabled for a Basic or Standard registry, which cannot turn it off.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicAccess string = 'Disabled'

var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
// Network rules, private endpoints and zone redundancy are Premium features.
var premium = sku == 'Premium'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // Registry names allow letters and digits only.
  name: replace('${namePrefix}acr', '-', '')
  location: location
  sku: {
    name: sku
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    zoneRedundancy: zoneRedundant ? 'Enabled' : 'Disabled'
    publicNetworkAccess: publicAccess
    // `az acr import` into a network-restricted registry needs the trusted-services bypass.
    networkRuleBypassOptions: 'AzureServices'
    networkRuleSet: premium ? {
      defaultAction: 'Deny'
      ipRules: []
    } : null
  }
}

resource kubeletPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, kubeletObjectId, acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: kubeletObjectId
    principalType: 'ServicePrincipal'
  }
}

output id string = registry.id
output loginServer string = registry.properties.loginServer
output name string = registry.name
