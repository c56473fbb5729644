// Azure Cache for Redis for the delivery function: TLS only (port 6380), TLS 1.2 at least,
// reached only through its private endpoint in the spoke (main.bicep). The access key goes to
// delivery's Key Vault as the secret Redis-AccessKey. Prod's is Premium across three zones.

param location string
param namePrefix string
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string
param capacity int
@description('Replicas in every availability zone (Premium only): prod.')
param zoneRedundant bool

resource redis 'Microsoft.Cache/redis@2024-03-01' = {
  name: '${namePrefix}-redis'
  location: location
  zones: zoneRedundant ? [
    '1'
    '2'
    '3'
  ] : null
  properties: {
    replicasPerPrimary: zoneRedundant ? 2 : null
    sku: {
      name: sku
      family: (sku == 'Premium') ? 'P' : 'C'
      capacity: capacity
    }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Disabled'
    redisConfiguration: {
      'maxmemory-policy': 'volatile-lru'
    }
  }
}

output id string = redis.id
output name string = redis.name
output hostName string = redis.properties.hostName
output sslPort int = redis.properties.sslPort
