// Cosmos DB for MongoDB: one database for package and one for dronescheduler. The MongoDB
// API signs in with the account's connection string, which goes to each function's Key
// Vault as the secret MongoDb-ConnectionString. Reached only through its private endpoint in
// the spoke (main.bicep); zone redundant in prod.

param location string
param namePrefix string
param databases array
param enableFreeTier bool
param zoneRedundant bool

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: '${namePrefix}-cosmos'
  location: location
  kind: 'MongoDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    enableFreeTier: enableFreeTier
    apiProperties: {
      serverVersion: '7.0'
    }
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: zoneRedundant
      }
    ]
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Disabled'
    // One region, one write location.
    enableMultipleWriteLocations: false
    disableKeyBasedMetadataWriteAccess: true
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/mongodbDatabases@2024-05-15' = [for name in databases: {
  parent: account
  name: name
  properties: {
    resource: {
      id: name
    }
  }
}]

output id string = account.id
output name string = account.name
