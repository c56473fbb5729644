// One private DNS zone's links to the spoke and the hub.

param zoneName string
param vnetIds array

resource zone 'Microsoft.Network/privateDnsZones@2024-06-01' existing = {
  name: zoneName
}

resource link 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [for vnetId in vnetIds: {
  parent: zone
  name: last(split(vnetId, '/'))
  location: 'global'
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}]
