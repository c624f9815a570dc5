// Entra ID objects for tenantops, with the Microsoft Graph Bicep extension (v1.0):
// the API app registration with its app roles, its service principal, and the assignment of
// Tenants.Write to the managed identities of the runbooks that onboard tenants.
// Needs bicepconfig.json with the extension (see docs/azure.md) and a deployer allowed to
// create applications and grant app roles (Application Administrator, or
// Cloud Application Administrator + Privileged Role Administrator for the assignment).
// Without the extension, use the az CLI steps in docs/azure.md instead.

extension microsoftGraphV1

@description('Unique name of the API app registration (Graph uniqueName).')
param apiAppUniqueName string = 'tenantops-api'

@description('Display name of the API app registration.')
param apiDisplayName string = 'tenantops API'

@description('Principal (object) IDs of managed identities that may onboard tenants (Tenants.Write).')
param writerPrincipalIds array = []

var tenantsRead = '0a6f2f3e-7d0c-4a55-9d0e-3b1f5c2e9a01'
var tenantsWrite = '1b7e3f4a-8e1d-4b66-8e1f-4c2a6d3f0b12'
var tenantsDelete = '2c8f4a5b-9f2e-4c77-9f2a-5d3b7e4a1c23'
var auditRead = '3d9a5b6c-0a3f-4d88-8a3b-6e4c8f5b2d34'

resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: apiAppUniqueName
  displayName: apiDisplayName
  signInAudience: 'AzureADMyOrg'
  api: {
    requestedAccessTokenVersion: 1
  }
  appRoles: [
    {
      id: tenantsRead
      value: 'Tenants.Read'
      displayName: 'Read tenants'
      description: 'List tenants and read their runs.'
      allowedMemberTypes: [ 'Application', 'User' ]
      isEnabled: true
    }
    {
      id: tenantsWrite
      value: 'Tenants.Write'
      displayName: 'Onboard tenants'
      description: 'Onboard tenants and retry their runs.'
      allowedMemberTypes: [ 'Application', 'User' ]
      isEnabled: true
    }
    {
      id: tenantsDelete
      value: 'Tenants.Delete'
      displayName: 'Offboard tenants'
      description: 'Offboard tenants.'
      allowedMemberTypes: [ 'Application', 'User' ]
      isEnabled: true
    }
    {
      id: auditRead
      value: 'Audit.Read'
      displayName: 'Read the audit trail'
      description: 'Read the audit trail: who changed which tenant or run, when, from where, and the outcome.'
      allowedMemberTypes: [ 'Application', 'User' ]
      isEnabled: true
    }
  ]
}

resource apiServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: api.appId
  appRoleAssignmentRequired: true
}

resource writers 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [for principalId in writerPrincipalIds: {
  appRoleId: tenantsWrite
  principalId: principalId
  resourceId: apiServicePrincipal.id
}]

output apiClientId string = api.appId
output apiServicePrincipalId string = apiServicePrincipal.id
