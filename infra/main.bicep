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

// The network (hub and spoke), the way in and operations. Dev takes the cheaper shape its
// parameter file sets (README "Network"): a Basic firewall, no Bastion, a Standard Service
// Bus and a Basic registry without private endpoints, an Application Gateway that may scale
// to zero instances, the Free AKS tier, no zone redundancy, a user pool that scales to zero.
param hubAddressPrefix string = '10.200.0.0/24'
param spokeAddressPrefix string = '10.240.0.0/16'
@description('The spoke\'s node subnet: the hub\'s firewall rules name it, the spoke creates it.')
param nodeSubnetPrefix string = '10.240.0.0/22'
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param firewallTier string
param deployBastion bool
@allowed([
  'Free'
  'Standard'
])
param aksSkuTier string
@description('Data stores and the registry replicated across availability zones.')
param zoneRedundant bool
@description('The public host name of the API (Application Gateway\'s listener, the Ingress\'s host).')
param ingressHostName string
@description('The TLS certificate\'s name in the ingress vault; an operator imports it (or a Key Vault issuer renews it).')
param ingressCertificateName string = 'ingress-tls'
@description('That certificate, a PFX without password, base64 (the deployment writes it into the vault).')
@secure()
param ingressCertificatePfxBase64 string
@description('The fixed address of the app-routing NGINX internal load balancer, in the spoke\'s ingress subnet.')
param ingressPrivateIp string = '10.240.4.4'
param appGatewayMinCapacity int
param appGatewayMaxCapacity int
@description('Requests per minute per client IP before the WAF blocks it.')
param wafRateLimitPerMinute int = 600
@description('Where alerts go.')
param alertEmails array

// The functions, their secrets, their queues and who sends or receives on each: generated
// from the functions' own declarations (`fabrikam functions --infra`; host/tests/infra.rs
// fails when it is stale), so a function added to the registry gets its identity, vault and
// roles here without an edit.
var registry = loadJsonContent('functions.json')
var functions = registry.functions
var isProd = environment == 'prod'
var serviceBusPrivate = serviceBusSku == 'Premium'
var registryPrivate = registrySku == 'Premium'

module hub 'modules/hub.bicep' = {
  name: 'hub'
  params: {
    location: location
    namePrefix: namePrefix
    addressPrefix: hubAddressPrefix
    spokeAddressPrefix: spokeAddressPrefix
    nodeSubnetPrefix: nodeSubnetPrefix
    firewallTier: firewallTier
    deployBastion: deployBastion
    logRetentionDays: logRetentionDays
    serviceBusFqdn: '${namePrefix}-sb.servicebus.windows.net'
    registryName: replace('${namePrefix}acr', '-', '')
  }
}

module spoke 'modules/spoke.bicep' = {
  name: 'spoke'
  params: {
    location: location
    namePrefix: namePrefix
    addressPrefix: spokeAddressPrefix
    nodePrefix: nodeSubnetPrefix
    hubVnetName: hub.outputs.vnetName
    hubVnetId: hub.outputs.vnetId
    firewallPrivateIp: hub.outputs.firewallPrivateIp
  }
}

module privateDns 'modules/private-dns.bicep' = {
  name: 'private-dns'
  params: {
    vnetIds: [
      spoke.outputs.vnetId
      hub.outputs.vnetId
    ]
  }
}

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
    skuTier: aksSkuTier
    nodeSubnetId: spoke.outputs.nodeSubnetId
    spokeVnetName: spoke.outputs.vnetName
  }
}

module ingress 'modules/ingress.bicep' = {
  name: 'ingress'
  params: {
    location: location
    namePrefix: namePrefix
    tenantId: tenantId
    gatewaySubnetId: spoke.outputs.gatewaySubnetId
    ingressPrivateIp: ingressPrivateIp
    hostName: ingressHostName
    certificateName: ingressCertificateName
    certificatePfxBase64: ingressCertificatePfxBase64
    certificateExpiresAt: dateTimeToEpoch(dateTimeAdd(deployedAt, secretLifetime))
    appRoutingPrincipalId: aks.outputs.appRoutingPrincipalId
    minCapacity: appGatewayMinCapacity
    maxCapacity: appGatewayMaxCapacity
    rateLimitPerMinute: wafRateLimitPerMinute
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    isProd: isProd
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    namePrefix: namePrefix
    aksId: aks.outputs.id
    aksName: aks.outputs.name
    azureMonitorWorkspaceId: monitoring.outputs.azureMonitorWorkspaceId
    alertEmails: alertEmails
  }
}

module policy 'modules/policy.bicep' = {
  name: 'policy'
  params: {
    aksName: aks.outputs.name
    registryLoginServer: registry.outputs.loginServer
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
    publicNetworkAccess: !serviceBusPrivate
    zoneRedundant: zoneRedundant && serviceBusPrivate
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}

module serviceBusEndpoint 'modules/private-endpoint.bicep' = if (serviceBusPrivate) {
  name: 'pe-servicebus'
  params: {
    location: location
    name: '${namePrefix}-sb'
    resourceId: serviceBus.outputs.namespaceId
    groupId: 'namespace'
    zoneId: privateDns.outputs.serviceBusZoneId
    subnetId: spoke.outputs.endpointsSubnetId
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  params: {
    location: location
    namePrefix: namePrefix
    sku: redisSku
    capacity: redisCapacity
    zoneRedundant: zoneRedundant && redisSku == 'Premium'
  }
}

module redisEndpoint 'modules/private-endpoint.bicep' = {
  name: 'pe-redis'
  params: {
    location: location
    name: '${namePrefix}-redis'
    resourceId: redis.outputs.id
    groupId: 'redisCache'
    zoneId: privateDns.outputs.redisZoneId
    subnetId: spoke.outputs.endpointsSubnetId
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
    zoneRedundant: zoneRedundant
  }
}

module cosmosEndpoint 'modules/private-endpoint.bicep' = {
  name: 'pe-cosmos'
  params: {
    location: location
    name: '${namePrefix}-cosmos'
    resourceId: cosmos.outputs.id
    groupId: 'MongoDB'
    zoneId: privateDns.outputs.cosmosZoneId
    subnetId: spoke.outputs.endpointsSubnetId
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    namePrefix: namePrefix
    sku: registrySku
    kubeletObjectId: aks.outputs.kubeletObjectId
    zoneRedundant: zoneRedundant && registryPrivate
    publicAccess: registryPrivate ? 'Disabled' : 'Enabled'
  }
}

module registryEndpoint 'modules/private-endpoint.bicep' = if (registryPrivate) {
  name: 'pe-registry'
  params: {
    location: location
    name: '${namePrefix}-acr'
    resourceId: registry.outputs.id
    groupId: 'registry'
    zoneId: privateDns.outputs.registryZoneId
    subnetId: spoke.outputs.endpointsSubnetId
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
    logAnalyticsId: monitoring.outputs.logAnalyticsId
  }
}]

// Every function's vault, reached by the CSI driver through its own private endpoint.
module vaultEndpoints 'modules/private-endpoint.bicep' = [for (f, i) in functions: {
  name: 'pe-vault-${f.name}'
  params: {
    location: location
    name: '${namePrefix}-${f.name}-kv'
    resourceId: function[i].outputs.vaultId
    groupId: 'vault'
    zoneId: privateDns.outputs.keyVaultZoneId
    subnetId: spoke.outputs.endpointsSubnetId
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

// The host's own KEDA external scaler (keda/<profile>/scaler.yaml, one per namespace) signs
// in with its own identity to read the scaled queues' runtime properties.
resource scalerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-scaler-id'
  location: location
}

resource scalerFederation 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: scalerIdentity
  name: 'fabrikam-scaler'
  properties: {
    issuer: aks.outputs.oidcIssuerUrl
    subject: 'system:serviceaccount:${kubernetesNamespace}:fabrikam-scaler'
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

// The scaler reads the same counters KEDA does, on the same queues.
module scalerReadsQueue 'modules/queue-access.bicep' = [for queue in registry.scaledQueues: {
  name: 'queue-scaler-metrics-${queue}'
  params: {
    namespaceName: serviceBus.outputs.namespaceName
    queueName: queue
    principalId: scalerIdentity.properties.principalId
    access: 'MetricsReader'
  }
}]

// The values keda/ needs for this environment: `fabrikam manifests --outputs` reads them into
// its input (keda/README.md maps each one).
output tenantId string = tenantId
output aksName string = aks.outputs.name
output kubernetesNamespace string = kubernetesNamespace
output registryLoginServer string = registry.outputs.loginServer
// A private registry (prod) takes no pushes: scripts/deploy and the release import into it
// from the registry named by this id in the environment the images were tested in (dev).
output registryId string = registry.outputs.id
output registryPrivate bool = registryPrivate
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output queueNames array = registry.queues
output redisHost string = redis.outputs.hostName
output kedaClientId string = kedaIdentity.properties.clientId
output scalerClientId string = scalerIdentity.properties.clientId
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
output scalerPrincipalId string = scalerIdentity.properties.principalId
output scalerIdentityName string = scalerIdentity.name
output serviceBusNamespaceName string = serviceBus.outputs.namespaceName
// The way in: the gateway's public address (the DNS record of ingressHostName points at it),
// and where the ingress certificate lives.
output ingressPublicIp string = ingress.outputs.publicIpAddress
// The functions' egress policies allow the private endpoints' subnet.
output privateEndpointsPrefix string = spoke.outputs.endpointsSubnetPrefix
output ingressHostName string = ingressHostName
output ingressPrivateIp string = ingressPrivateIp
output ingressSubnetName string = spoke.outputs.ingressSubnetName
output ingressCertificateUri string = '${ingress.outputs.vaultUri}certificates/${ingressCertificateName}'
