<#
.SYNOPSIS
    Onboard a tenant through the tenantops API from an Azure Automation PowerShell runbook.

.DESCRIPTION
    The same flow as onboard_tenant.py. The token comes from the runtime's managed-identity
    endpoint with resource = the API's client ID (NOT Azure Resource Manager: a token from
    Connect-AzAccount / az account get-access-token is refused with "You do not have
    permission to view this directory or page."). -ApiUrl is the API's base URL, with or
    without /api.

.EXAMPLE
    .\Onboard-Tenant.ps1 -ApiUrl https://func-tenantops.azurewebsites.net `
        -ClientId 5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e -Slug acme `
        -Domain acme.example.com -AdminEmail admin@acme.example.com
#>
param(
    [Parameter(Mandatory = $true)] [string] $ApiUrl,
    [Parameter(Mandatory = $true)] [string] $ClientId,
    [Parameter(Mandatory = $true)] [string] $Slug,
    [Parameter(Mandatory = $true)] [string] $Domain,
    [Parameter(Mandatory = $true)] [string] $AdminEmail,
    [string] $Plan = "standard",
    [string] $DisplayName = $Slug,
    [string] $IdentityClientId = "",
    [int] $TimeoutSeconds = 1800,
    [int] $PollSeconds = 2
)

$ErrorActionPreference = "Stop"

$name = $ClientId -replace '^api://', ''
if ($name.TrimEnd('/') -match '/' -or $name.EndsWith('.default')) {
    throw "-ClientId '$ClientId': give the API's client ID (a GUID) or its App ID URI, not a scope; Entra answers a scope with AADSTS500011."
}

function Get-ApiToken {
    param([string] $Resource, [string] $UserAssignedClientId)
    if ($env:IDENTITY_ENDPOINT -and $env:IDENTITY_HEADER) {
        $query = "resource=$([uri]::EscapeDataString($Resource))&api-version=2019-08-01"
        if ($UserAssignedClientId) { $query += "&client_id=$UserAssignedClientId" }
        $uri = "$($env:IDENTITY_ENDPOINT)?$query"
        $headers = @{ "X-IDENTITY-HEADER" = $env:IDENTITY_HEADER; "Metadata" = "True" }
        $source = "IDENTITY_ENDPOINT"
    } elseif ($env:MSI_ENDPOINT -and $env:MSI_SECRET) {
        $query = "resource=$([uri]::EscapeDataString($Resource))&api-version=2017-09-01"
        if ($UserAssignedClientId) { $query += "&clientid=$UserAssignedClientId" }
        $uri = "$($env:MSI_ENDPOINT)?$query"
        $headers = @{ "secret" = $env:MSI_SECRET; "Metadata" = "true" }
        $source = "MSI_ENDPOINT"
    } else {
        $query = "resource=$([uri]::EscapeDataString($Resource))&api-version=2018-02-01"
        if ($UserAssignedClientId) { $query += "&client_id=$UserAssignedClientId" }
        $uri = "http://169.254.169.254/metadata/identity/oauth2/token?$query"
        $headers = @{ "Metadata" = "true" }
        $source = "IMDS"
    }
    try {
        $response = Invoke-WebRequest -Method Get -Uri $uri -Headers $headers -UseBasicParsing
    } catch {
        $status = $_.Exception.Response.StatusCode.value__
        $detail = $_.ErrorDetails.Message
        $hint = ""
        if ($status -eq 500) {
            $hint = " App Service hides Entra's reason: usually AADSTS500011 (resource is not the API's client ID or App ID URI) or AADSTS501051 (no app role on the API while assignment is required)."
        }
        throw "the $source managed-identity endpoint refused resource=$Resource (HTTP $status): $detail$hint"
    }
    Write-Output "token: obtained from $source for resource $Resource" | Out-Host
    return ($response.Content | ConvertFrom-Json).access_token
}

function Invoke-Api {
    param([string] $Method, [string] $Uri, [string] $Token, $Body = $null, [string] $IdempotencyKey = "")
    $headers = @{ "Authorization" = "Bearer $Token"; "Accept" = "application/json" }
    if ($IdempotencyKey) { $headers["Idempotency-Key"] = $IdempotencyKey }
    try {
        if ($null -ne $Body) {
            return Invoke-RestMethod -Method $Method -Uri $Uri -Headers $headers `
                -ContentType "application/json" -Body ($Body | ConvertTo-Json -Depth 5)
        }
        return Invoke-RestMethod -Method $Method -Uri $Uri -Headers $headers
    } catch {
        $status = $_.Exception.Response.StatusCode.value__
        $challenge = $_.Exception.Response.Headers["WWW-Authenticate"]
        throw "$Method $Uri was refused with HTTP ${status}: $($_.ErrorDetails.Message) $challenge"
    }
}

$token = Get-ApiToken -Resource $ClientId -UserAssignedClientId $IdentityClientId
# The API root, /api included, whether -ApiUrl has it or not (as onboard_tenant.py).
$base = $ApiUrl.TrimEnd('/') -replace '/api$', ''
$base = "$base/api"
$spec = @{ slug = $Slug; display_name = $DisplayName; custom_domain = $Domain; admin_email = $AdminEmail; plan = $Plan }
$created = Invoke-Api -Method Post -Uri "$base/tenants" -Token $token -Body $spec `
    -IdempotencyKey "runbook-$Slug-$Domain"
$run = $created.run
Write-Output "run $($run.id) ($($run.kind)) for tenant ${Slug}: $($run.status)"

$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
while ($run.status -in @("pending", "running")) {
    if ((Get-Date) -gt $deadline) {
        throw "run $($run.id) still $($run.status) after $TimeoutSeconds s; follow it with GET $base/runs/$($run.id)"
    }
    Start-Sleep -Seconds $PollSeconds
    $run = Invoke-Api -Method Get -Uri "$base/runs/$($run.id)" -Token $token
    $steps = ($run.steps | ForEach-Object { "$($_.name)[$($_.status)]" }) -join ", "
    Write-Output "$((Get-Date).ToUniversalTime().ToString('HH:mm:ss')) $($run.status): $steps"
}

if ($run.status -ne "succeeded") {
    $failed = $run.steps | Where-Object { $_.status -eq "failed" } | Select-Object -First 1
    throw "run $($run.id) $($run.status): step $($failed.name): $($failed.error). Fix the cause, then POST $base/runs/$($run.id)/retry"
}
Write-Output "tenant $Slug is active (run $($run.id))"
