// Azure Cache for Redis for the delivery function: TLS only (port 6380), TLS 1.2 at least.
// The access key goes to delivery's Key Vault as the secret Redis-AccessKey.

param location string
param namePrefix string
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param sku string
param capacity int

resource redis 'Microsoft.Cache/redis@2024-03-01' = {
  name: '${namePrefix}-redis'
  location: location
  properties: {
    sku: {
      name: sku
      family: (sku == 'Premium') ? 'P' : 'C'
      capacity: capacity
    }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    redisConfiguration: {
      'maxmemory-policy': 'volatile-lru'
    }
  }
}

output name string = redis.name
output hostName string = redis.properties.hostName
output sslPort int = redis.properties.sslPort
