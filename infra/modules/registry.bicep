// The container registry the function images come from; the cluster's kubelet identity
// pulls with AcrPull, no admin user.

param location string
param namePrefix string
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string
param kubeletObjectId string

var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

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

output loginServer string = registry.properties.loginServer
