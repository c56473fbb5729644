// One PaaS resource reached privately from the spoke: a private endpoint in the endpoints
// subnet and the zone group that keeps its record in the private DNS zone of its kind
// (private-dns.bicep makes the zones, once, linked to the spoke and the hub).

param location string
param name string
@description('The resource the endpoint connects to.')
param resourceId string
@description('The sub-resource: vault, redisCache, MongoDB, namespace, registry.')
param groupId string
@description('The private DNS zone the name resolves in (private-dns.bicep).')
param zoneId string
param subnetId string

resource endpoint 'Microsoft.Network/privateEndpoints@2024-01-01' = {
  name: '${name}-pe'
  location: location
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: name
        properties: {
          privateLinkServiceId: resourceId
          groupIds: [
            groupId
          ]
        }
      }
    ]
  }
}

resource records 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = {
  parent: endpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: groupId
        properties: {
          privateDnsZoneId: zoneId
        }
      }
    ]
  }
}

output endpointId string = endpoint.id
