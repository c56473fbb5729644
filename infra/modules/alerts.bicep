// Alerting: the Prometheus rule groups of infra/alerts/prometheus-rules.json (the functions'
// own metrics, docs/METRICS.md, plus pod restarts and KEDA scaler errors) evaluated by Azure
// Monitor on the managed Prometheus workspace, Azure Monitor metric alerts on the nodes' CPU
// and memory, and the action group they all notify. `promtool check rules` validates the
// rule file in CI, and infra/tests/test_alerts.py checks that every metric it reads is
// documented.

param location string
param namePrefix string
param aksId string
param aksName string
param azureMonitorWorkspaceId string
@description('Who is told: e-mail addresses of the on-call rota.')
param alertEmails array
@description('Node CPU and memory use (percent) above which the metric alerts fire.')
param nodeUsageThresholdPercent int = 85

var rules = loadJsonContent('../alerts/prometheus-rules.json')

resource oncall 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-oncall'
  location: 'global'
  properties: {
    groupShortName: 'fabrikam'
    enabled: true
    emailReceivers: [for (email, i) in alertEmails: {
      name: 'oncall-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
  }
}

// One Azure rule group per Prometheus group. Prometheus writes `for` as 5m; Azure wants an
// ISO 8601 duration, PT5M.
resource ruleGroups 'Microsoft.AlertsManagement/prometheusRuleGroups@2023-03-01' = [for group in rules.groups: {
  name: '${namePrefix}-${group.name}'
  location: location
  properties: {
    enabled: true
    clusterName: aksName
    interval: 'PT${toUpper(group.interval)}'
    scopes: [
      azureMonitorWorkspaceId
      aksId
    ]
    rules: [for rule in group.rules: {
      alert: rule.alert
      expression: rule.expr
      'for': 'PT${toUpper(rule.for)}'
      severity: int(rule.labels.severity)
      labels: rule.labels
      annotations: rule.annotations
      enabled: true
      resolveConfiguration: {
        autoResolved: true
        timeToResolve: 'PT10M'
      }
      actions: [
        {
          actionGroupId: oncall.id
        }
      ]
    }]
  }
}]

resource nodeCpu 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-node-cpu'
  location: 'global'
  properties: {
    description: 'A node\'s CPU use stays above the threshold: the user pool should have scaled out.'
    severity: 2
    enabled: true
    scopes: [
      aksId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'cpu'
          metricNamespace: 'Microsoft.ContainerService/managedClusters'
          metricName: 'node_cpu_usage_percentage'
          dimensions: [
            {
              name: 'node'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: nodeUsageThresholdPercent
          timeAggregation: 'Average'
        }
      ]
    }
    actions: [
      {
        actionGroupId: oncall.id
      }
    ]
  }
}

resource nodeMemory 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: '${namePrefix}-node-memory'
  location: 'global'
  properties: {
    description: 'A node\'s working set stays above the threshold: pods will be evicted.'
    severity: 2
    enabled: true
    scopes: [
      aksId
    ]
    evaluationFrequency: 'PT1M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'memory'
          metricNamespace: 'Microsoft.ContainerService/managedClusters'
          metricName: 'node_memory_working_set_percentage'
          dimensions: [
            {
              name: 'node'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: nodeUsageThresholdPercent
          timeAggregation: 'Average'
        }
      ]
    }
    actions: [
      {
        actionGroupId: oncall.id
      }
    ]
  }
}

output actionGroupId string = oncall.id
output ruleGroupNames array = [for group in rules.groups: '${namePrefix}-${group.name}']
