// The Service Bus namespace and the queues between the functions (the delivery queue between
// ingestion and workflow). Sign-in
// is Entra only (no SAS keys): the functions and KEDA use workload identity.

param location string
param namePrefix string
@allowed([
  'Standard'
  'Premium'
])
param sku string
@description('Every queue a function sends to or is triggered by (infra/functions.json).')
param queueNames array
@description('How long a received message stays locked; the host renews the lock while a handler runs.')
param lockDuration string
@description('Deliveries before a message is dead-lettered; the host abandons transient failures.')
param maxDeliveryCount int
@description('Covers client retries of one request: ingestion derives the message id from the Idempotency-Key (or delivery id, operation and request id), so a retried send inside the window is dropped.')
param duplicateDetectionWindow string
@description('Premium (prod) is reached only through its private endpoint; Standard (dev) has none, so it keeps a public endpoint that the firewall lets the spoke reach.')
param publicNetworkAccess bool
param zoneRedundant bool
param logAnalyticsId string

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: '${namePrefix}-sb'
  location: location
  sku: {
    name: sku
    tier: sku
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: publicNetworkAccess ? 'Enabled' : 'Disabled'
    zoneRedundant: zoneRedundant
  }
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [for name in queueNames: {
  parent: namespace
  name: name
  properties: {
    lockDuration: lockDuration
    maxDeliveryCount: maxDeliveryCount
    deadLetteringOnMessageExpiration: true
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    defaultMessageTimeToLive: 'P14D'
    enablePartitioning: false
  }
}]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-logs'
  scope: namespace
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

output namespaceName string = namespace.name
output namespaceId string = namespace.id
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
