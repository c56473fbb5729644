// The spoke the cluster lives in (the AKS baseline's): a subnet for the nodes, one for the
// internal load balancer of the app-routing NGINX ingress, one for Application Gateway and one
// for the private endpoints of every PaaS dependency. A route table sends all of the node
// subnet's egress (0.0.0.0/0) to the hub's firewall (AKS outboundType userDefinedRouting);
// the spoke is peered with the hub both ways.

param location string
param namePrefix string
param addressPrefix string = '10.240.0.0/16'
param hubVnetName string
param hubVnetId string
param firewallPrivateIp string
@description('The node subnet (the hub\'s firewall rules name it as a source, so main.bicep computes it once).')
param nodePrefix string
@description('The internal load balancer of the app-routing NGINX ingress.')
param ingressPrefix string = '10.240.4.0/28'
param gatewayPrefix string = '10.240.5.0/24'
param endpointsPrefix string = '10.240.6.0/27'

resource egress 'Microsoft.Network/routeTables@2024-01-01' = {
  name: '${namePrefix}-rt-egress'
  location: location
  properties: {
    // AKS must not learn routes that bypass the firewall.
    disableBgpRoutePropagation: true
    routes: [
      {
        name: 'everything-through-the-firewall'
        properties: {
          addressPrefix: '0.0.0.0/0'
          nextHopType: 'VirtualAppliance'
          nextHopIpAddress: firewallPrivateIp
        }
      }
    ]
  }
}

resource nodesNsg 'Microsoft.Network/networkSecurityGroups@2024-01-01' = {
  name: '${namePrefix}-nsg-nodes'
  location: location
  properties: {
    securityRules: []
  }
}

resource ingressNsg 'Microsoft.Network/networkSecurityGroups@2024-01-01' = {
  name: '${namePrefix}-nsg-ingress'
  location: location
  properties: {
    securityRules: [
      {
        // Only Application Gateway reaches the internal ingress.
        name: 'https-from-application-gateway'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: gatewayPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: ingressPrefix
          destinationPortRange: '443'
        }
      }
      {
        name: 'deny-other-inbound'
        properties: {
          priority: 4000
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource gatewayNsg 'Microsoft.Network/networkSecurityGroups@2024-01-01' = {
  name: '${namePrefix}-nsg-appgw'
  location: location
  properties: {
    securityRules: [
      {
        name: 'https-from-internet'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'Internet'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '443'
        }
      }
      {
        // Application Gateway v2's own management traffic.
        name: 'gateway-manager'
        properties: {
          priority: 110
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'GatewayManager'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '65200-65535'
        }
      }
      {
        name: 'load-balancer'
        properties: {
          priority: 120
          direction: 'Inbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefix: 'AzureLoadBalancer'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
      {
        name: 'deny-other-inbound'
        properties: {
          priority: 4000
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource endpointsNsg 'Microsoft.Network/networkSecurityGroups@2024-01-01' = {
  name: '${namePrefix}-nsg-endpoints'
  location: location
  properties: {
    securityRules: [
      {
        // Only the cluster reaches the private endpoints.
        name: 'from-the-nodes'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: nodePrefix
          sourcePortRange: '*'
          destinationAddressPrefix: endpointsPrefix
          destinationPortRanges: [
            '443'
            '5671'
            '6380'
            '10255'
          ]
        }
      }
      {
        name: 'deny-other-inbound'
        properties: {
          priority: 4000
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource spoke 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: '${namePrefix}-spoke-vnet'
  location: location
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'snet-nodes'
        properties: {
          addressPrefix: nodePrefix
          routeTable: {
            id: egress.id
          }
          networkSecurityGroup: {
            id: nodesNsg.id
          }
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
      {
        name: 'snet-ingress'
        properties: {
          addressPrefix: ingressPrefix
          routeTable: {
            id: egress.id
          }
          networkSecurityGroup: {
            id: ingressNsg.id
          }
        }
      }
      {
        // No route table: Application Gateway v2 needs direct Internet egress for its own
        // management.
        name: 'snet-appgw'
        properties: {
          addressPrefix: gatewayPrefix
          networkSecurityGroup: {
            id: gatewayNsg.id
          }
        }
      }
      {
        name: 'snet-endpoints'
        properties: {
          addressPrefix: endpointsPrefix
          networkSecurityGroup: {
            id: endpointsNsg.id
          }
          privateEndpointNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource toHub 'Microsoft.Network/virtualNetworks/virtualNetworkPeerings@2024-01-01' = {
  parent: spoke
  name: 'to-hub'
  properties: {
    remoteVirtualNetwork: {
      id: hubVnetId
    }
    allowForwardedTraffic: true
    allowVirtualNetworkAccess: true
    allowGatewayTransit: false
    useRemoteGateways: false
  }
}

resource hub 'Microsoft.Network/virtualNetworks@2024-01-01' existing = {
  name: hubVnetName
}

resource fromHub 'Microsoft.Network/virtualNetworks/virtualNetworkPeerings@2024-01-01' = {
  parent: hub
  name: 'to-${spoke.name}'
  properties: {
    remoteVirtualNetwork: {
      id: spoke.id
    }
    allowForwardedTraffic: true
    allowVirtualNetworkAccess: true
    allowGatewayTransit: false
    useRemoteGateways: false
  }
}

output vnetId string = spoke.id
output vnetName string = spoke.name
output nodeSubnetId string = '${spoke.id}/subnets/snet-nodes'
output ingressSubnetName string = 'snet-ingress'
output gatewaySubnetId string = '${spoke.id}/subnets/snet-appgw'
output endpointsSubnetId string = '${spoke.id}/subnets/snet-endpoints'
output nodeSubnetPrefix string = nodePrefix
output ingressSubnetPrefix string = ingressPrefix
output endpointsSubnetPrefix string = endpointsPrefix
