// tenantops on Azure: the Function App (API + worker) and everything it needs.
// Deploy: see docs/azure.md. Validated in tests/azure/test_deploy.py (parsed with pycep).
//
// What this creates, in the resource group it is deployed to:
// - Log Analytics + Application Insights;
// - a storage account for the Functions host, reached with the app's managed identity;
// - an Elastic Premium plan with one always-ready instance, so the DBOS worker keeps running;
// - the Function App (Python 3.11, system-assigned managed identity) with Easy Auth
//   (authsettingsV2: Return401, audiences GUID and api://, allowed client applications);
// - Azure Database for PostgreSQL flexible server for the engine's workflows and the catalog
//   (and, with the azure-postgres provider, the tenant databases);
// - a Key Vault (RBAC) for tenant secrets and the engine's database URL;
// - role assignments for the app's identity: storage data roles, Key Vault Secrets Officer,
//   Website Contributor (hostnames and certificates), DNS Zone Contributor on the tenants'
//   zone, Contributor on the flexible server (tenant databases).
// App roles (Tenants.Read/Write/Delete) and their assignment to callers are Entra ID objects,
// not ARM resources: deploy/graph.bicep (Microsoft Graph Bicep extension) or the az CLI step
// in docs/azure.md.

targetScope = 'resourceGroup'

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Short prefix for resource names (letters and digits).')
@minLength(3)
@maxLength(12)
param namePrefix string = 'tenantops'

@description('Client ID (GUID) of the API app registration that tokens must be issued for.')
param apiClientId string

@description('Entra ID tenant of the API app registration and of the callers.')
param tenantId string = tenant().tenantId

@description('Client IDs allowed to call the API (runbook managed identities, CI principals).')
param allowedClientApplications array = []

@description('Name of the existing public Azure DNS zone that holds the tenants\' domains.')
param dnsZoneName string

@description('Resource group of the DNS zone.')
param dnsZoneResourceGroup string = resourceGroup().name

@description('Administrator login of the PostgreSQL flexible server.')
param postgresAdminLogin string = 'tenantops_admin'

@description('Administrator password of the PostgreSQL flexible server.')
@secure()
param postgresAdminPassword string

var suffix = uniqueString(resourceGroup().id)
var functionAppName = '${namePrefix}-func-${suffix}'
var storageName = toLower(take('${namePrefix}st${suffix}', 24))
var vaultName = take('${namePrefix}-kv-${suffix}', 24)
var postgresName = '${namePrefix}-pg-${suffix}'
var engineDatabase = 'tenantops_engine'
var catalogDatabase = 'tenantops_catalog'

// Built-in role definition IDs.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  websiteContributor: 'de139f84-1756-47ae-9be6-808fbbe84772'
  dnsZoneContributor: 'befefa01-2a29-4197-83a8-272ff33ce314'
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs-${suffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-ai-${suffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: false
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    supportsHttpsTrafficOnly: true
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${namePrefix}-plan-${suffix}'
  location: location
  kind: 'elastic'
  sku: {
    name: 'EP1'
    tier: 'ElasticPremium'
  }
  properties: {
    reserved: true
    maximumElasticWorkerCount: 5
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: vaultName
  location: location
  properties: {
    tenantId: tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
  }
}

resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: postgresName
  location: location
  sku: {
    name: 'Standard_B1ms'
    tier: 'Burstable'
  }
  properties: {
    version: '16'
    administratorLogin: postgresAdminLogin
    administratorLoginPassword: postgresAdminPassword
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Enabled'
      tenantId: tenantId
    }
    storage: {
      storageSizeGB: 32
    }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
  }
}

resource allowAzureServices 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = {
  parent: postgres
  name: 'AllowAzureServices'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource engineDb 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: postgres
  name: engineDatabase
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

resource catalogDb 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: postgres
  name: catalogDatabase
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

resource engineUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'engine-database-url'
  properties: {
    value: 'postgresql://${postgresAdminLogin}:${uriComponent(postgresAdminPassword)}@${postgres.properties.fullyQualifiedDomainName}:5432/${engineDatabase}?sslmode=require'
  }
}

resource catalogUrl 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'catalog-database-url'
  properties: {
    value: 'postgresql://${postgresAdminLogin}:${uriComponent(postgresAdminPassword)}@${postgres.properties.fullyQualifiedDomainName}:5432/${catalogDatabase}?sslmode=require'
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: 'SystemAssigned'
    siteConfig: {
      linuxFxVersion: 'PYTHON|3.11'
      minimumElasticInstanceCount: 1
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
        { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'python' }
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'WEBSITE_AUTH_AAD_ALLOWED_TENANTS', value: tenantId }
        { name: 'TENANTOPS_AUTH__TENANT_ID', value: tenantId }
        { name: 'TENANTOPS_AUTH__CLIENT_ID', value: apiClientId }
        // No list means no restriction; an empty list would admit nobody (docs/auth.md).
        { name: 'TENANTOPS_AUTH__ALLOWED_APPLICATIONS', value: empty(allowedClientApplications) ? 'null' : string(allowedClientApplications) }
        { name: 'TENANTOPS_ENGINE__SYSTEM_DATABASE_URL', value: '@Microsoft.KeyVault(SecretUri=${engineUrl.properties.secretUri})' }
        { name: 'TENANTOPS_CATALOG__URL', value: '@Microsoft.KeyVault(SecretUri=${catalogUrl.properties.secretUri})' }
        { name: 'TENANTOPS_AZURE__SUBSCRIPTION_ID', value: subscription().subscriptionId }
        { name: 'TENANTOPS_AZURE__RESOURCE_GROUP', value: resourceGroup().name }
        { name: 'TENANTOPS_AZURE__IDENTITY_SOURCE', value: 'managed-identity' }
        { name: 'TENANTOPS_PROVIDERS__SECRETS__NAME', value: 'key-vault' }
        { name: 'TENANTOPS_PROVIDERS__SECRETS__KEY_VAULT__VAULT_URL', value: vault.properties.vaultUri }
        { name: 'TENANTOPS_PROVIDERS__DATABASE__NAME', value: 'azure-postgres' }
        { name: 'TENANTOPS_PROVIDERS__DATABASE__AZURE_POSTGRES__SERVER', value: postgres.name }
        { name: 'TENANTOPS_PROVIDERS__DNS__NAME', value: 'azure-dns' }
        { name: 'TENANTOPS_PROVIDERS__DNS__ZONES', value: string([dnsZoneName]) }
        { name: 'TENANTOPS_PROVIDERS__DNS__AZURE__RESOURCE_GROUP', value: dnsZoneResourceGroup }
        { name: 'TENANTOPS_PROVIDERS__WEBHOST__NAME', value: 'azure-app-service' }
        { name: 'TENANTOPS_PROVIDERS__WEBHOST__AZURE_APP_SERVICE__APP_NAME', value: functionAppName }
      ]
    }
  }
}

resource easyAuth 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/api/health'
        '/api/health/ready'
        '/api/meta'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: apiClientId
          openIdIssuer: 'https://sts.windows.net/${tenantId}/'
        }
        validation: {
          allowedAudiences: [
            apiClientId
            'api://${apiClientId}'
          ]
          // Easy Auth documents only a non-empty allowedApplications; an empty one has been seen
          // to admit nobody, so the policy is left out when no application is listed.
          defaultAuthorizationPolicy: empty(allowedClientApplications) ? null : {
            allowedApplications: allowedClientApplications
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionApp.id, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource websiteContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, functionApp.id, roles.websiteContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.websiteContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource postgresContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(postgres.id, functionApp.id, roles.contributor)
  scope: postgres
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.contributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

module dnsAccess 'dns-access.bicep' = {
  name: 'tenantops-dns-access'
  scope: resourceGroup(dnsZoneResourceGroup)
  params: {
    dnsZoneName: dnsZoneName
    principalId: functionApp.identity.principalId
    roleDefinitionId: roles.dnsZoneContributor
  }
}

output functionAppName string = functionApp.name
output functionAppHostname string = functionApp.properties.defaultHostName
output principalId string = functionApp.identity.principalId
output customDomainVerificationId string = functionApp.properties.customDomainVerificationId
output keyVaultUri string = vault.properties.vaultUri
output postgresServer string = postgres.properties.fullyQualifiedDomainName
