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
param redisSku string
param redisCapacity int
param registrySku string
param logRetentionDays int
@description('Public IP ranges (CIDR) allowed to reach the AKS API server.')
param apiServerAuthorizedIpRanges array
@description('The repository Flux reads rendered manifests from (HTTPS).')
param gitopsRepositoryUrl string
@description('The branch .github/workflows/release.yml publishes rendered manifests to.')
param gitopsBranch string = 'gitops'
@description('How often Flux reconciles the cluster with that branch.')
param gitopsSyncIntervalSeconds int = 120
@description('A user and token Flux reads a private repository with; empty for a public one.')
param gitopsHttpsUser string = ''
@secure()
param gitopsHttpsToken string = ''
@description('Secrets written by this deployment expire this long after it (ISO 8601 duration).')
param secretLifetime string = 'P180D'
param deployedAt string = utcNow()

// The functions, their secrets, their queues and who sends or receives on each: generated
// from the functions' own declarations (`fabrikam functions --infra`; host/tests/infra.rs
// fails when it is stale), so a function added to the registry gets its identity, vault and
// roles here without an edit.
var registry = loadJsonContent('functions.json')
var functions = registry.functions
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

module gitops 'modules/gitops.bicep' = {
  name: 'gitops'
  params: {
    aksName: aks.outputs.name
    repositoryUrl: gitopsRepositoryUrl
    branch: gitopsBranch
    path: './${environment}'
    syncIntervalInSeconds: gitopsSyncIntervalSeconds
    httpsUser: gitopsHttpsUser
    httpsToken: gitopsHttpsToken
  }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  params: {
    location: location
    namePrefix: namePrefix
    sku: serviceBusSku
    queueNames: registry.queues
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

// The value of every Key Vault object a function may declare (object name = the file name in
// its CSI mount). Each function's vault gets only the objects it declares.
var secretValues = {
  'Redis-AccessKey': redisCache.listKeys().primaryKey
  'MongoDb-ConnectionString': cosmosAccount.listConnectionStrings().connectionStrings[0].connectionString
}

module function 'modules/function.bicep' = [for f in functions: {
  name: 'function-${f.name}'
  dependsOn: [
    redis
    cosmos
  ]
  params: {
    location: location
    namePrefix: namePrefix
    functionName: f.name
    oidcIssuerUrl: aks.outputs.oidcIssuerUrl
    kubernetesNamespace: kubernetesNamespace
    tenantId: tenantId
    secretNames: f.secrets
    secretValues: secretValues
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

// Each function's role on the queues it sends to or receives from, as its declaration says.
module functionQueueRoles 'modules/queue-access.bicep' = [for r in registry.queueRoles: {
  name: 'queue-${r.function}-${r.role}-${r.queue}'
  params: {
    namespaceName: serviceBus.outputs.namespaceName
    queueName: r.queue
    principalId: function[r.functionIndex].outputs.principalId
    access: r.role
  }
}]

// KEDA reads the length of every queue that scales a function.
module kedaReadsQueue 'modules/queue-access.bicep' = [for queue in registry.scaledQueues: {
  name: 'queue-keda-metrics-${queue}'
  params: {
    namespaceName: serviceBus.outputs.namespaceName
    queueName: queue
    principalId: kedaIdentity.properties.principalId
    access: 'MetricsReader'
  }
}]

// The values keda/ needs for this environment: `fabrikam manifests --outputs` reads them into
// its input (keda/README.md maps each one).
output tenantId string = tenantId
output aksName string = aks.outputs.name
output kubernetesNamespace string = kubernetesNamespace
output registryLoginServer string = registry.outputs.loginServer
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output queueNames array = registry.queues
output redisHost string = redis.outputs.hostName
output kedaClientId string = kedaIdentity.properties.clientId
output functionIdentities array = [for (f, i) in functions: {
  name: f.name
  clientId: function[i].outputs.clientId
  keyVault: function[i].outputs.keyVaultName
  identityName: function[i].outputs.identityName
  principalId: function[i].outputs.principalId
}]
// What scripts/dev-env needs to give a developer environment its own queue and federated
// credentials.
output oidcIssuerUrl string = aks.outputs.oidcIssuerUrl
output kedaPrincipalId string = kedaIdentity.properties.principalId
output serviceBusNamespaceName string = serviceBus.outputs.namespaceName
