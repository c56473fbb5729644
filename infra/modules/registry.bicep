// The container registry the function images come from; the cluster's kubelet identity
// pulls with AcrPull, no admin user. Prod's is Premium, zone redundant, and reached by the
// nodes through its private endpoint (main.bicep).

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
@description('The public IP ranges images are pushed from (the release pipeline\'s egress); nothing else reaches the public endpoint. The nodes pull through the private endpoint (Premium).')
param pushIpRanges array

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
    // Still public, for the pushes from CI outside the network, but (Premium, prod) closed to
    // everything but their ranges; infra/README.md says why this is the one public endpoint
    // left. Dev's Basic registry has no network rules.
    publicNetworkAccess: 'Enabled'
    networkRuleBypassOptions: 'AzureServices'
    networkRuleSet: premium ? {
      defaultAction: 'Deny'
      ipRules: [for range in pushIpRanges: {
        action: 'Allow'
        value: range
      }]
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
