// One function's identity and secrets: a user-assigned managed identity, federated with the
// function's Kubernetes service account (workload identity), and its own Key Vault (RBAC,
// soft delete, purge protection) holding the secrets it declares, which the identity may
// read and nothing else may. The vault has no public endpoint: the CSI driver on the nodes
// reaches it through its private endpoint (main.bicep); its audit log goes to Log Analytics.

param location string
param namePrefix string
@description('The function, as named in functions/ (ingestion, workflow, delivery, package, dronescheduler).')
param functionName string
param oidcIssuerUrl string
param kubernetesNamespace string
param tenantId string
@description('The Key Vault objects this function declares; the Secrets Store CSI driver mounts each as a file.')
param secretNames array
@description('Object name -> value, for every object any function may declare; only secretNames are written.')
@secure()
param secretValues object
param softDeleteRetentionDays int
@description('When the secrets expire (seconds since the epoch): rotate before then.')
param secretsExpireAt int
param logAnalyticsId string

var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-${functionName}-id'
  location: location
}

resource federation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: identity
  name: '${functionName}-service-account'
  properties: {
    issuer: oidcIssuerUrl
    subject: 'system:serviceaccount:${kubernetesNamespace}:${functionName}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // Vault names are 3-24 characters; uniqueString keeps them unique per resource group.
  name: take('${take(functionName, 10)}-${uniqueString(resourceGroup().id, namePrefix)}', 24)
  location: location
  properties: {
    tenantId: tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionDays
    enablePurgeProtection: true
    // The deployment writes the secrets through Azure Resource Manager (a trusted service).
    publicNetworkAccess: 'Disabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Deny'
    }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for name in secretNames: {
  parent: vault
  name: name
  properties: {
    value: secretValues[name]
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: secretsExpireAt
    }
  }
}]

resource readOwnSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource audit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-logs'
  scope: vault
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        categoryGroup: 'audit'
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

output vaultId string = vault.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
output keyVaultName string = vault.name
output identityName string = identity.name
