// The way in (the AKS baseline's): Application Gateway WAF_v2 with the OWASP rule set in
// prevention mode and a per-client rate limit, terminating TLS with a certificate kept in a
// Key Vault of its own, in front of the app-routing NGINX ingress on an internal load balancer
// (keda/'s Ingress, on the ingress class the manifests declare). The app-routing add-on's
// identity may read the certificate too, so NGINX serves the same one between the gateway and
// the pods.

param location string
param namePrefix string
param tenantId string
param gatewaySubnetId string
@description('The internal load balancer address of the app-routing NGINX ingress (a fixed address in the ingress subnet, which keda/\'s NginxIngressController asks for).')
param ingressPrivateIp string
@description('The public host name clients use; the certificate must cover it.')
param hostName string
@description('The name of the certificate in the ingress vault.')
param certificateName string
@description('The listener certificate, a PFX without password, base64: written into the vault by this deployment through Azure Resource Manager (the vault has no public endpoint), as the AKS baseline does.')
@secure()
param certificatePfxBase64 string
@description('When the stored certificate expires (seconds since the epoch): deploy a renewed one before then.')
param certificateExpiresAt int
@description('The app-routing add-on\'s identity (object id), which reads the certificate for NGINX.')
param appRoutingPrincipalId string
@minValue(0)
param minCapacity int
@minValue(2)
param maxCapacity int
@description('Requests a client (by IP) may send per minute before the gateway blocks it.')
param rateLimitPerMinute int
param logAnalyticsId string
param isProd bool

var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
// Reads a whole certificate, key included: what app routing's Key Vault integration asks for.
var keyVaultCertificateUserRoleId = 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('ingress-${uniqueString(resourceGroup().id, namePrefix)}', 24)
  location: location
  properties: {
    tenantId: tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: isProd ? 90 : 7
    enablePurgeProtection: true
    // Application Gateway reads it as a trusted service; nothing else reaches it publicly.
    publicNetworkAccess: 'Disabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Deny'
    }
  }
}

resource certificate 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: certificateName
  properties: {
    value: certificatePfxBase64
    contentType: 'application/x-pkcs12'
    attributes: {
      enabled: true
      exp: certificateExpiresAt
    }
  }
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-appgw-id'
  location: location
}

resource gatewayReadsCertificate 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appRoutingReadsCertificate 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appRoutingPrincipalId, keyVaultCertificateUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCertificateUserRoleId)
    principalId: appRoutingPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource waf 'Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies@2024-01-01' = {
  name: '${namePrefix}-waf'
  location: location
  properties: {
    policySettings: {
      state: 'Enabled'
      mode: 'Prevention'
      requestBodyCheck: true
      // The functions' own body limit is 256 KiB; the WAF inspects all of it.
      maxRequestBodySizeInKb: 256
      fileUploadLimitInMb: 1
    }
    managedRules: {
      managedRuleSets: [
        {
          ruleSetType: 'OWASP'
          ruleSetVersion: '3.2'
        }
        {
          ruleSetType: 'Microsoft_BotManagerRuleSet'
          ruleSetVersion: '1.0'
        }
      ]
    }
    customRules: [
      {
        // Per client IP: a client over the limit gets 403 until the minute is over.
        name: 'ratelimitperclient'
        priority: 10
        ruleType: 'RateLimitRule'
        rateLimitDuration: 'OneMin'
        rateLimitThreshold: rateLimitPerMinute
        groupByUserSession: [
          {
            groupByVariables: [
              {
                variableName: 'ClientAddr'
              }
            ]
          }
        ]
        matchConditions: [
          {
            matchVariables: [
              {
                variableName: 'RequestUri'
              }
            ]
            operator: 'Any'
            negationConditon: false
            matchValues: []
          }
        ]
        action: 'Block'
      }
    ]
  }
}

resource publicIp 'Microsoft.Network/publicIPAddresses@2024-01-01' = {
  name: '${namePrefix}-appgw-pip'
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

var gatewayName = '${namePrefix}-appgw'
var gatewayId = resourceId('Microsoft.Network/applicationGateways', gatewayName)

resource gateway 'Microsoft.Network/applicationGateways@2024-01-01' = {
  name: gatewayName
  location: location
  zones: [
    '1'
    '2'
    '3'
  ]
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  dependsOn: [
    gatewayReadsCertificate
    certificate
  ]
  properties: {
    sku: {
      name: 'WAF_v2'
      tier: 'WAF_v2'
    }
    autoscaleConfiguration: {
      minCapacity: minCapacity
      maxCapacity: maxCapacity
    }
    firewallPolicy: {
      id: waf.id
    }
    sslPolicy: {
      policyType: 'Predefined'
      policyName: 'AppGwSslPolicy20220101S'
    }
    gatewayIPConfigurations: [
      {
        name: 'gateway'
        properties: {
          subnet: {
            id: gatewaySubnetId
          }
        }
      }
    ]
    frontendIPConfigurations: [
      {
        name: 'public'
        properties: {
          publicIPAddress: {
            id: publicIp.id
          }
        }
      }
    ]
    frontendPorts: [
      {
        name: 'https'
        properties: {
          port: 443
        }
      }
    ]
    sslCertificates: [
      {
        name: 'ingress'
        properties: {
          // The versionless id, so a renewed certificate is picked up.
          keyVaultSecretId: '${vault.properties.vaultUri}secrets/${certificateName}'
        }
      }
    ]
    backendAddressPools: [
      {
        name: 'nginx-internal'
        properties: {
          backendAddresses: [
            {
              ipAddress: ingressPrivateIp
            }
          ]
        }
      }
    ]
    probes: [
      {
        // NGINX answers its own health endpoint for the host.
        name: 'nginx'
        properties: {
          protocol: 'Https'
          host: hostName
          path: '/healthz'
          interval: 15
          timeout: 10
          unhealthyThreshold: 3
          match: {
            statusCodes: [
              '200-404'
            ]
          }
        }
      }
    ]
    backendHttpSettingsCollection: [
      {
        name: 'nginx-https'
        properties: {
          port: 443
          protocol: 'Https'
          hostName: hostName
          pickHostNameFromBackendAddress: false
          requestTimeout: 30
          probe: {
            id: '${gatewayId}/probes/nginx'
          }
        }
      }
    ]
    httpListeners: [
      {
        name: 'https'
        properties: {
          hostName: hostName
          protocol: 'Https'
          requireServerNameIndication: true
          frontendIPConfiguration: {
            id: '${gatewayId}/frontendIPConfigurations/public'
          }
          frontendPort: {
            id: '${gatewayId}/frontendPorts/https'
          }
          sslCertificate: {
            id: '${gatewayId}/sslCertificates/ingress'
          }
        }
      }
    ]
    requestRoutingRules: [
      {
        name: 'to-nginx'
        properties: {
          ruleType: 'Basic'
          priority: 100
          httpListener: {
            id: '${gatewayId}/httpListeners/https'
          }
          backendAddressPool: {
            id: '${gatewayId}/backendAddressPools/nginx-internal'
          }
          backendHttpSettings: {
            id: '${gatewayId}/backendHttpSettingsCollection/nginx-https'
          }
        }
      }
    ]
  }
}

resource gatewayDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-logs'
  scope: gateway
  properties: {
    workspaceId: logAnalyticsId
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

output publicIpAddress string = publicIp.properties.ipAddress
output vaultName string = vault.name
output vaultUri string = vault.properties.vaultUri
