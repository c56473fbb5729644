// GitOps, as the AKS baseline does it: the cluster's Flux extension pulls this environment's
// rendered manifests (images pinned by digest; .github/workflows/release.yml publishes them
// to the GitOps branch under ./<environment>) and applies them. Prune removes from the
// cluster what the branch no longer holds, so a function removed from the registry leaves.
// `kubectl apply -k` (scripts/deploy --only apply) stays the manual path.

param aksName string
@description('The repository Flux reads, as an HTTPS URL.')
param repositoryUrl string
@description('The branch the pipeline publishes rendered manifests to.')
param branch string
@description('The folder of this environment in that branch, such as ./dev.')
param path string
@description('How often Flux looks for a new commit and reconciles the cluster.')
param syncIntervalInSeconds int
@description('A user and token for a private repository; empty for a public one.')
param httpsUser string = ''
@secure()
param httpsToken string = ''

resource aks 'Microsoft.ContainerService/managedClusters@2024-09-01' existing = {
  name: aksName
}

resource flux 'Microsoft.KubernetesConfiguration/extensions@2023-05-01' = {
  name: 'flux'
  scope: aks
  properties: {
    extensionType: 'microsoft.flux'
    autoUpgradeMinorVersion: true
    releaseTrain: 'Stable'
    scope: {
      cluster: {
        releaseNamespace: 'flux-system'
      }
    }
    // Only what a Git source and kustomizations need.
    configurationSettings: {
      'source-controller.enabled': 'true'
      'kustomize-controller.enabled': 'true'
      'notification-controller.enabled': 'true'
      'helm-controller.enabled': 'false'
      'image-automation-controller.enabled': 'false'
      'image-reflector-controller.enabled': 'false'
    }
  }
}

resource fluxConfiguration 'Microsoft.KubernetesConfiguration/fluxConfigurations@2023-05-01' = {
  name: 'fabrikam'
  scope: aks
  dependsOn: [
    flux
  ]
  properties: {
    scope: 'cluster'
    namespace: 'flux-system'
    sourceKind: 'GitRepository'
    suspend: false
    gitRepository: {
      url: repositoryUrl
      repositoryRef: {
        branch: branch
      }
      syncIntervalInSeconds: syncIntervalInSeconds
      timeoutInSeconds: 180
      httpsUser: empty(httpsUser) ? null : httpsUser
    }
    configurationProtectedSettings: empty(httpsToken) ? {} : {
      httpsKey: base64(httpsToken)
    }
    kustomizations: {
      fabrikam: {
        path: path
        prune: true
        syncIntervalInSeconds: syncIntervalInSeconds
        retryIntervalInSeconds: 60
        timeoutInSeconds: 600
        wait: true
      }
    }
  }
}

output fluxConfigurationName string = fluxConfiguration.name
