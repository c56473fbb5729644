// A role on the delivery queue for one principal: Data Sender (ingestion), Data Receiver
// (workflow), or Data Owner for KEDA, whose scaler reads the queue's message count through
// the management API, which the send and receive roles do not allow. Scoped to the queue,
// not the namespace.

param namespaceName string
param queueName string
param principalId string
@allowed([
  'Sender'
  'Receiver'
  'MetricsReader'
])
param access string

var roleIds = {
  Sender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  Receiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  MetricsReader: '090c5cfd-751d-490a-894a-3ce6f1109419'
}

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: namespaceName
}

resource queue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = {
  parent: namespace
  name: queueName
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(queue.id, principalId, roleIds[access])
  scope: queue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[access])
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
