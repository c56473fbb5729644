// Azure Policy on the cluster (the add-on's Gatekeeper enforces it): the Kubernetes pod
// security restricted standards initiative in audit mode (the generated manifests already meet
// it: non-root, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, a
// read-only root), and a deny for any image that does not come from the project's registry.

param aksName string
@description('The registry\'s login server, e.g. fabrikamprodacr.azurecr.io.')
param registryLoginServer string
@description('Namespaces the policies leave alone: the platform\'s own.')
param excludedNamespaces array = [
  'kube-system'
  'gatekeeper-system'
  'azure-arc'
  'app-routing-system'
  'flux-system'
]

// Built-in definitions (Azure/azure-policy): "Kubernetes cluster pod security restricted
// standards for Linux-based workloads" and "Kubernetes cluster containers should only use
// allowed images".
var restrictedInitiativeId = '/providers/Microsoft.Authorization/policySetDefinitions/42b8ef37-b724-4e24-bbc8-7a7708edfe00'
var allowedImagesPolicyId = '/providers/Microsoft.Authorization/policyDefinitions/febd0533-8e55-448f-b837-bd0e06f16469'

resource aks 'Microsoft.ContainerService/managedClusters@2024-09-01' existing = {
  name: aksName
}

resource restricted 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: guid(aks.id, restrictedInitiativeId)
  scope: aks
  properties: {
    displayName: '${aksName}: pod security restricted standards (audit)'
    policyDefinitionId: restrictedInitiativeId
    enforcementMode: 'Default'
    parameters: {
      effect: {
        value: 'Audit'
      }
      excludedNamespaces: {
        value: excludedNamespaces
      }
    }
  }
}

resource onlyOurImages 'Microsoft.Authorization/policyAssignments@2024-04-01' = {
  name: guid(aks.id, allowedImagesPolicyId)
  scope: aks
  properties: {
    displayName: '${aksName}: images only from ${registryLoginServer} (deny)'
    policyDefinitionId: allowedImagesPolicyId
    enforcementMode: 'Default'
    parameters: {
      effect: {
        value: 'Deny'
      }
      allowedContainerImagesRegex: {
        value: '^${replace(registryLoginServer, '.', '\\.')}/.+$'
      }
      excludedNamespaces: {
        value: excludedNamespaces
      }
    }
  }
}
