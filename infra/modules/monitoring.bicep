// Log Analytics for container insights, and an Azure Monitor workspace for managed
// Prometheus (the functions' /metrics, scraped by the AKS metrics add-on).

param location string
param namePrefix string
param retentionDays int

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionDays
  }
}

resource prometheus 'Microsoft.Monitor/accounts@2023-04-03' = {
  name: '${namePrefix}-prometheus'
  location: location
}

output logAnalyticsId string = logs.id
output azureMonitorWorkspaceId string = prometheus.id
