#Requires -Version 5.1
#Requires -Modules @{ ModuleName='ExchangeOnlineManagement'; ModuleVersion='3.0.0' }
<#
.SYNOPSIS
    Undo tenanttls's upgrade of one tenant's inbound connector, by hand.

.DESCRIPTION
    tenanttls writes this script from the settings of the original connector that it
    saved before the upgrade. In the same order as tenanttls's own rollback, it:
      1. Preflight: checks that the session is connected to the right tenant.
      2. Removes the connector that tenanttls created (recognised by its Comment).
      3. Renames the -BACKUP connector back to its original name, or creates it again
         from the saved settings when neither connector exists.
      4. Restores any setting that differs from the saved one and checks the result.
    The accepted domain stays: it does no harm and a later upgrade reuses it.
    tenanttls switched the provider's relay back to the shared certificate when it wrote
    this script, so the -BACKUP connector already matches the relay's mail.
    Every step reads before it changes, so running the script again is safe. It stops at
    the first error with a message, and writes a transcript to the current folder.
    The values for this tenant are below. They are quoted literals, which PowerShell
    does not expand; do not edit them.
#>

# ---- Values for this tenant, written by tenanttls (quoted literals; do not edit) ----
$ScriptKind = 'rollback'
$ToolVersion = '0.1.0'
$RunId = '01HZX3Q8W7'
$TenantId = '72f988bf-86f1-41af-91ab-2d7cd011db47'
$TenantDomain = 'contoso.onmicrosoft.com'
$ConnectorName = 'NorthwindInboundConnector'
$LegacyName = 'NorthwindInboundConnector'
$BackupName = 'NorthwindInboundConnector-BACKUP'
$UniqueName = 'k7q2m4x9d3f8h1j6n5p0r2t4vw.northwindtls.example'
$OwnershipMarker = 'Managed by tenanttls'
$SnapshotSettings = @{
    Enabled = $true
    ConnectorType = 'OnPremises'
    SenderDomains = @('*')
    SenderIPAddresses = @()
    TlsSenderCertificateName = '*.northwind.example'
    RequireTls = $true
    RestrictDomainsToCertificate = $true
    RestrictDomainsToIPAddresses = $false
    CloudServicesMailEnabled = $false
    TreatMessagesAsInternal = $false
    TrustedOrganizations = @()
    AssociatedAcceptedDomains = @()
}
$SnapshotConnector = @{
    Name = 'NorthwindInboundConnector'
    Enabled = $true
    ConnectorType = 'OnPremises'
    SenderDomains = @('*')
    TlsSenderCertificateName = '*.northwind.example'
    RequireTls = $true
    RestrictDomainsToCertificate = $true
    RestrictDomainsToIPAddresses = $false
    CloudServicesMailEnabled = $false
    TreatMessagesAsInternal = $false
    Comment = 'Set up by Northwind support'
}
# ---- End of values ----

Set-StrictMode -Version 1.0
$ErrorActionPreference = 'Stop'

$Stamp = (Get-Date).ToUniversalTime().ToString('yyyyMMddTHHmmssZ')
$OutputFolder = (Get-Location).Path
$TranscriptPath = Join-Path -Path $OutputFolder -ChildPath "tenanttls-$ScriptKind-$TenantDomain-$Stamp.log"
$SnapshotPath = Join-Path -Path $OutputFolder -ChildPath "tenanttls-snapshot-$TenantDomain-$Stamp.json"
$ConnectorsExportPath = Join-Path -Path $OutputFolder -ChildPath "tenanttls-connectors-$TenantDomain-$Stamp.json"
$DomainsExportPath = Join-Path -Path $OutputFolder -ChildPath "tenanttls-accepted-domains-$TenantDomain-$Stamp.json"

$BooleanFields = @('Enabled', 'RequireTls', 'RestrictDomainsToCertificate', 'RestrictDomainsToIPAddresses',
    'CloudServicesMailEnabled', 'TreatMessagesAsInternal')
$ListFields = @('SenderDomains', 'SenderIPAddresses', 'TrustedOrganizations', 'AssociatedAcceptedDomains')
# The mail-flow settings that tenanttls compares between two connectors.
$SettingFields = @('Enabled', 'ConnectorType', 'SenderDomains', 'SenderIPAddresses', 'TlsSenderCertificateName',
    'RequireTls', 'RestrictDomainsToCertificate', 'RestrictDomainsToIPAddresses', 'CloudServicesMailEnabled',
    'TreatMessagesAsInternal', 'TrustedOrganizations', 'AssociatedAcceptedDomains')

function Write-Step([string]$Text) {
    Write-Host ''
    Write-Host "==> $Text" -ForegroundColor Cyan
}

function Write-Done([string]$Text) {
    Write-Host "    ok: $Text" -ForegroundColor Green
}

function Stop-Script([string]$Text) {
    throw [System.InvalidOperationException]::new($Text)
}

function Get-Text($Value) {
    if ($null -eq $Value) { return '' }
    return ([string]$Value).Trim()
}

function ConvertTo-Boolean($Value) {
    if ($Value -is [string]) { return $Value.Trim() -eq 'true' }
    return [bool]$Value
}

# Normalise a value as tenanttls does before comparing: "smtp:*;1" is "*", case is ignored.
function ConvertTo-Setting([string]$Field, $Value) {
    if ($ListFields -contains $Field) {
        $items = @($Value | Where-Object { $null -ne $_ } | ForEach-Object {
            (Get-Text $_) -replace '^smtp:', '' -replace ';\d+$', ''
        })
        return ((@($items | ForEach-Object { $_.ToLowerInvariant() }) | Sort-Object) -join ',')
    }
    if ($BooleanFields -contains $Field) { return [string](ConvertTo-Boolean $Value) }
    return (Get-Text $Value).ToLowerInvariant()
}

function Get-Differences($Connector, $Expected, [string[]]$Fields) {
    $differences = @()
    foreach ($field in $Fields) {
        $have = ConvertTo-Setting $field $Connector.$field
        if ($Expected -is [System.Collections.IDictionary]) { $want = ConvertTo-Setting $field $Expected[$field] }
        else { $want = ConvertTo-Setting $field $Expected.$field }
        if ($have -ne $want) { $differences += "$field is '$have', expected '$want'" }
    }
    return ,$differences
}

function Test-Ours($Connector) {
    return (Get-Text $Connector.Comment).StartsWith($OwnershipMarker, [System.StringComparison]::Ordinal)
}

function Find-Connector($Connectors, [string]$Name) {
    return @($Connectors | Where-Object { (Get-Text $_.Name) -eq $Name }) | Select-Object -First 1
}

function Connect-Services([bool]$NeedGraph) {
    if ($NeedGraph) { Write-Step 'Connecting to Exchange Online and Microsoft Graph' }
    else { Write-Step 'Connecting to Exchange Online' }
    $sessions = @(Get-ConnectionInformation | Where-Object { $_.State -eq 'Connected' })
    if ($sessions.Count -eq 0) {
        Connect-ExchangeOnline -ShowBanner:$false
    }
    if ($NeedGraph) {
        $context = Get-MgContext
        if ($null -eq $context -or (Get-Text $context.TenantId) -ne $TenantId) {
            Connect-MgGraph -TenantId $TenantId -Scopes 'Domain.ReadWrite.All' -NoWelcome
        }
    }
}

function Test-Tenant([bool]$NeedGraph) {
    Write-Step "Checking that the session is connected to $TenantDomain"
    $initial = @(Get-AcceptedDomain | Where-Object { ConvertTo-Boolean $_.InitialDomain })
    $names = ($initial | ForEach-Object { Get-Text $_.DomainName }) -join ', '
    if ($initial.Count -ne 1 -or (Get-Text $initial[0].DomainName) -ne $TenantDomain) {
        Stop-Script "Exchange Online is connected to the tenant of $names, not $TenantDomain. Run Disconnect-ExchangeOnline, sign in to $TenantDomain and run the script again."
    }
    if ($NeedGraph) {
        $context = Get-MgContext
        if ((Get-Text $context.TenantId) -ne $TenantId) {
            Stop-Script "Microsoft Graph is connected to tenant $($context.TenantId), not $TenantId ($TenantDomain). Run Disconnect-MgGraph and run the script again."
        }
    }
    Write-Done "connected to $TenantDomain ($TenantId)"
}

function Export-Result {
    Write-Step 'Exporting the connectors and accepted domains for the provider'
    Get-InboundConnector | ConvertTo-Json -Depth 5 | Out-File -FilePath $ConnectorsExportPath -Encoding utf8
    Get-AcceptedDomain | ConvertTo-Json -Depth 5 | Out-File -FilePath $DomainsExportPath -Encoding utf8
    Write-Done "wrote $ConnectorsExportPath and $DomainsExportPath"
}

function Remove-OurConnector {
    Write-Step "Removing the connector that tenanttls created"
    $connectors = @(Get-InboundConnector)
    $ours = Find-Connector $connectors $ConnectorName
    foreach ($other in @($connectors | Where-Object { (Test-Ours $_) -and (Get-Text $_.Name) -ne $ConnectorName })) {
        Write-Host "    note: '$($other.Name)' also carries the tenanttls marker; it is left in place" -ForegroundColor Yellow
    }
    if ($null -eq $ours -or -not (Test-Ours $ours)) {
        Write-Done "no connector of tenanttls named '$ConnectorName'"
        return
    }
    Remove-InboundConnector -Identity $ConnectorName -Confirm:$false
    Write-Done "removed '$ConnectorName'"
}

function Restore-LegacyName {
    Write-Step "Giving '$LegacyName' its name back"
    $connectors = @(Get-InboundConnector)
    $original = Find-Connector $connectors $LegacyName
    if ($null -ne $original -and (Test-Ours $original)) {
        Stop-Script "'$LegacyName' still carries the tenanttls marker after the removal. Run the script again."
    }
    $backup = Find-Connector $connectors $BackupName
    if ($null -ne $original -and $null -ne $backup) {
        Stop-Script "Both '$LegacyName' and '$BackupName' exist and tenanttls created neither. Compare them with the provider's snapshot, remove the wrong one, then run the script again."
    }
    if ($null -ne $original) {
        Write-Done "'$LegacyName' has its name already"
        return
    }
    if ($null -ne $backup) {
        Set-InboundConnector -Identity $BackupName -Name $LegacyName
        Write-Done "renamed '$BackupName' to '$LegacyName'"
        return
    }
    New-InboundConnector @SnapshotConnector | Out-Null
    Write-Done "neither '$LegacyName' nor '$BackupName' existed; created '$LegacyName' again from the saved settings"
}

function Restore-LegacySettings {
    Write-Step "Checking '$LegacyName' against the saved settings"
    $restored = Find-Connector @(Get-InboundConnector) $LegacyName
    if ($null -eq $restored) {
        Stop-Script "Exchange Online does not list '$LegacyName' after the rename. Run the script again."
    }
    $changes = @{}
    foreach ($field in $SettingFields) {
        if ($SnapshotSettings.Contains($field) -and (ConvertTo-Setting $field $restored.$field) -ne (ConvertTo-Setting $field $SnapshotSettings[$field])) {
            $value = $SnapshotSettings[$field]
            # An empty list is written as $null, which clears a multi-valued property.
            if ($ListFields -contains $field -and @($value).Count -eq 0) { $value = $null }
            $changes[$field] = $value
        }
    }
    if ($changes.Count -gt 0) {
        Set-InboundConnector -Identity $LegacyName @changes
        Write-Done "restored $($changes.Keys -join ', ')"
        $restored = Find-Connector @(Get-InboundConnector) $LegacyName
    }
    $differences = Get-Differences $restored $SnapshotSettings @($SettingFields | Where-Object { $SnapshotSettings.Contains($_) })
    if ($differences.Count -gt 0) {
        Stop-Script "'$LegacyName' still differs from the saved settings: $($differences -join '; '). Run the script again."
    }
    Write-Done "'$LegacyName' matches the saved settings"
}

function Write-Summary {
    Write-Host ''
    Write-Host "Done. Tell the provider that the upgrade of $TenantDomain is rolled back:" -ForegroundColor Green
    Write-Host "  tenant:            $TenantDomain ($TenantId)"
    Write-Host "  restored:          '$LegacyName'"
    Write-Host "  accepted domain:   $UniqueName (left in place)"
    Write-Host "  script run id:     $RunId"
    Write-Host "Send them these files: $ConnectorsExportPath, $DomainsExportPath and the transcript $TranscriptPath"
    Write-Host "The provider records the result with the two exports:"
    Write-Host "  tenanttls manual done $TenantId --rolled-back --export $(Split-Path -Leaf $ConnectorsExportPath) --export $(Split-Path -Leaf $DomainsExportPath)"
}

Start-Transcript -Path $TranscriptPath | Out-Null
$exitCode = 0
try {
    Connect-Services $false
    Test-Tenant $false
    Remove-OurConnector
    Restore-LegacyName
    Restore-LegacySettings
    Export-Result
    Write-Summary
}
catch {
    Write-Host ''
    Write-Host "STOPPED: $($_.Exception.Message)" -ForegroundColor Red
    Write-Host 'Nothing after the failed step was changed. Fix the cause and run the script again: it skips the steps already done.'
    $exitCode = 1
}
finally {
    Stop-Transcript | Out-Null
    Write-Host "Transcript: $TranscriptPath"
}
exit $exitCode
