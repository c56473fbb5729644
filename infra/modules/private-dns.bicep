// The private DNS zones of the PaaS dependencies reached through private endpoints, each
// linked to the spoke (where the pods resolve them) and the hub (operators, through Bastion).
// The zones' names are Azure's, one per kind of resource.

param vnetIds array

var names = {
  keyVault: 'privatelink${environment().suffixes.keyvaultDns}'
  redis: 'privatelink.redis.cache.windows.net'
  cosmos: 'privatelink.mongo.cosmos.azure.com'
  serviceBus: 'privatelink.servicebus.windows.net'
  registry: 'privatelink${environment().suffixes.acrLoginServer}'
}

resource keyVault 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: names.keyVault
  location: 'global'
}

resource redis 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: names.redis
  location: 'global'
}

resource cosmos 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: names.cosmos
  location: 'global'
}

resource serviceBus 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: names.serviceBus
  location: 'global'
}

resource registry 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: names.registry
  location: 'global'
}

module links 'private-dns-links.bicep' = [for zoneName in [
  names.keyVault
  names.redis
  names.cosmos
  names.serviceBus
  names.registry
]: {
  name: 'dns-links-${replace(zoneName, '.', '-')}'
  dependsOn: [
    keyVault
    redis
    cosmos
    serviceBus
    registry
  ]
  params: {
    zoneName: zoneName
    vnetIds: vnetIds
  }
}]

output keyVaultZoneId string = keyVault.id
output redisZoneId string = redis.id
output cosmosZoneId string = cosmos.id
output serviceBusZoneId string = serviceBus.id
output registryZoneId string = registry.id
