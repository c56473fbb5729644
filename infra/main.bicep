// The whole Azure footprint of the Fabrikam drone-delivery functions, in one resource group.
// infra/README.md maps each resource to the part of the architecture it serves; the outputs
// fill the manifests' input file (keda/).

targetScope = 'resourceGroup'

@allowed([
  'dev'
  'prod'
])
param environment string
param location string = resourceGroup().location
@description('Prefix of every resource name, e.g. fabrikam-dev.')
param namePrefix string
param tenantId string = subscription().tenantId
@description('Entra group administering the cluster.')
param aksAdminGroupObjectId string
param kubernetesVersion string
param kubernetesNamespace string = 'fabrikam'
param systemNodeCount int
param systemVmSize string
param userVmSize string
param userMinCount int
param userMaxCount int
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSku string
param queueName string = 'deliveryrequests'
param redisSku string
param redisCapacity int
param registrySku string
param logRetentionDays int
@description('Public IP ranges (CIDR) allowed to reach the AKS API server.')
param apiServerAuthorizedIpRanges array
@description('Secrets written by this deployment expire this long after it (ISO 8601 duration).')
param secretLifetime string = 'P180D'
param deployedAt string = utcNow()

// The functions, in the order the outputs below index them.
var functions = [
  'ingestion'
  'workflow'
  'delivery'
  'package'
  'dronescheduler'
]
var isProd = environment == 'prod'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    namePrefix: namePrefix
    retentionDays: logRetentionDays
  }
}

module aks 'modules/aks.bicep' = {
  name: 'aks'
  params: {
    location: location
    namePrefix: namePrefix
    kubernetesVersion: kubernetesVersion
    adminGroupObjectId: aksAdminGroupObjectId
    systemNodeCount: systemNodeCount
    systemVmSize: systemVmSize
    userVmSize: userVmSize
    userMinCount: userMinCount
    userMaxCount: userMaxCount
    apiServerAuthorizedIpRanges: apiServerAuthorizedIpRanges
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    azureMonitorWorkspaceId: monitoring.outputs.azureMonitorWorkspaceId
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    location: location
    namePrefix: namePrefix
    sku: serviceBusSku
    queueName: queueName
    // The host renews locks while a handler runs; a minute bounds how long a crashed
    // pod's messages wait before redelivery.
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    duplicateDetectionWindow: 'PT10M'
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  params: {
    location: location
    namePrefix: namePrefix
    sku: redisSku
    capacity: redisCapacity
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    location: location
    namePrefix: namePrefix
    databases: [
      'package'
      'dronescheduler'
    ]
    enableFreeTier: !isProd
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    namePrefix: namePrefix
    sku: registrySku
    kubeletObjectId: aks.outputs.kubeletObjectId
  }
}

resource redisCache 'Microsoft.Cache/redis@2024-03-01' existing = {
  name: '${namePrefix}-redis'
}

resource cosmosAccount 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' existing = {
  name: '${namePrefix}-cosmos'
}

// The secrets each function reads from its CSI mount (object name = file name).
var mongoSecret = {
  'MongoDb-ConnectionString': cosmosAccount.listConnectionStrings().connectionStrings[0].connectionString
}
var functionSecrets = {
  ingestion: {}
  workflow: {}
  delivery: {
    'Redis-AccessKey': redisCache.listKeys().primaryKey
  }
  package: mongoSecret
  dronescheduler: mongoSecret
}

module function 'modules/function.bicep' = [for name in functions: {
  name: 'function-${name}'
  dependsOn: [
    redis
    cosmos
  ]
  params: {
    location: location
    namePrefix: namePrefix
    functionName: name
    oidcIssuerUrl: aks.outputs.oidcIssuerUrl
    kubernetesNamespace: kubernetesNamespace
    tenantId: tenantId
    secrets: functionSecrets[name]
    softDeleteRetentionDays: isProd ? 90 : 7
    secretsExpireAt: dateTimeToEpoch(dateTimeAdd(deployedAt, secretLifetime))
  }
}]

// KEDA's operator (the AKS add-on runs it as kube-system/keda-operator) signs in with its
// own identity to read the queue's length.
resource kedaIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-keda-id'
  location: location
}

resource kedaFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: kedaIdentity
  name: 'keda-operator'
  properties: {
    issuer: aks.outputs.oidcIssuerUrl
    subject: 'system:serviceaccount:kube-system:keda-operator'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

module ingestionSends 'modules/queue-access.bicep' = {
  name: 'queue-ingestion-sender'
  params: {
    namespaceName: serviceBus.outputs.namespaceName
    queueName: queueName
    principalId: function[0].outputs.principalId
    access: 'Sender'
  }
}

module workflowReceives 'modules/queue-access.bicep' = {
  name: 'queue-workflow-receiver'
  params: {
    namespaceName: serviceBus.outputs.namespaceName
    queueName: queueName
    principalId: function[1].outputs.principalId
    access: 'Receiver'
  }
}

module kedaReadsQueue 'modules/queue-access.bicep' = {
  name: 'queue-keda-metrics'
  params: {
    namespaceName: serviceBus.outputs.namespaceName
    queueName: queueName
    principalId: kedaIdentity.properties.principalId
    access: 'MetricsReader'
  }
}

// The values keda/ needs for this environment (its input file; see keda/README.md).
output tenantId string = tenantId
output aksName string = aks.outputs.name
output registryLoginServer string = registry.outputs.loginServer
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output queueName string = queueName
output redisHost string = redis.outputs.hostName
output kedaClientId string = kedaIdentity.properties.clientId
output ingestionClientId string = function[0].outputs.clientId
output ingestionKeyVault string = function[0].outputs.keyVaultName
output workflowClientId string = function[1].outputs.clientId
output workflowKeyVault string = function[1].outputs.keyVaultName
output deliveryClientId string = function[2].outputs.clientId
output deliveryKeyVault string = function[2].outputs.keyVaultName
output packageClientId string = function[3].outputs.clientId
output packageKeyVault string = function[3].outputs.keyVaultName
output dronescheduleClientId string = function[4].outputs.clientId
output dronescheduleKeyVault string = function[4].outputs.keyVaultName
