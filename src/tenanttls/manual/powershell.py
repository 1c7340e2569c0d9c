"""The fixed PowerShell text of the manual upgrade and rollback scripts.

Nothing in this module depends on a tenant: every tenant value reaches the script
through the variables of the values block that `script.py` writes above this text,
as quoted literals. Keeping tenant data out of the code below is what makes the
scripts safe against hostile names; tests check that this text is the same for
every input.

Both scripts require ExchangeOnlineManagement 3.0.0 or later, the first version
with Get-ConnectionInformation. Conventions the tests rely on: each call to an Exchange Online or Microsoft Graph
cmdlet is on a line of its own with named parameters whose values are variables,
``$true``/``$false``, or an ``@{ key = $Variable }`` hashtable, and the step functions
are defined in the order the main block calls them.
"""

from __future__ import annotations

UPGRADE_HEADER = r"""#Requires -Version 5.1
#Requires -Modules @{ ModuleName='ExchangeOnlineManagement'; ModuleVersion='3.0.0' }, Microsoft.Graph.Identity.DirectoryManagement
<#
.SYNOPSIS
    Upgrade one tenant's inbound connector to its unique certificate name, by hand.

.DESCRIPTION
    tenanttls writes this script for support staff when a customer grants no API
    permissions. It performs the upgrade that tenanttls performs over the API, in the
    same order:
      1. Preflight: the session is connected to the right tenant, the provider's
         connector is present and as expected, and no conflicting -BACKUP connector exists.
      2. Add the unique name as a domain (Microsoft Graph) and verify it by its TXT record.
      3. Wait until Exchange Online lists the name as an accepted domain.
      4. Save the old connector's settings to a file, then rename it to <name>-BACKUP.
      5. Create the new connector with the settings in $NewConnector.
      6. Check the new connector field by field, then export the result for the provider.
    Every step reads before it changes, so running the script again is safe: it skips
    what is done. It stops at the first error with a message, and writes a transcript
    to the current folder.

    Run it in a PowerShell session as an Exchange administrator of the customer's tenant
    who may also add domains (Domain Name Administrator or Global Administrator).
    The values for this tenant are below. They are quoted literals, which PowerShell
    does not expand; do not edit them.
#>
"""

ROLLBACK_HEADER = r"""#Requires -Version 5.1
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
"""

VALUES_START = "# ---- Values for this tenant, written by tenanttls (quoted literals; do not edit) ----"
VALUES_END = "# ---- End of values ----"

# Helpers shared by both scripts. They read only the variables of the values block.
COMMON_FUNCTIONS = r"""
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
"""

UPGRADE_FUNCTIONS = r"""
# The fields that tenanttls compares between the new connector and $NewConnector.
$DesiredFields = @('Name', 'SenderDomains', 'ConnectorType', 'RequireTls', 'RestrictDomainsToCertificate',
    'TlsSenderCertificateName', 'CloudServicesMailEnabled', 'TreatMessagesAsInternal', 'Enabled')
$script:Legacy = $null
$script:StaleBackup = $false
$script:Original = $ExpectedLegacy

function Test-Connectors {
    Write-Step 'Checking the inbound connectors'
    $connectors = @(Get-InboundConnector)
    $legacy = Find-Connector $connectors $LegacyName
    if ($null -ne $legacy -and (Test-Ours $legacy)) { $legacy = $null }
    $backup = Find-Connector $connectors $BackupName
    $named = Find-Connector $connectors $ConnectorName

    foreach ($connector in $connectors) {
        $isNamed = (Get-Text $connector.Name) -eq $ConnectorName
        if (-not (Test-Ours $connector) -and -not $isNamed -and (Get-Text $connector.TlsSenderCertificateName) -eq $UniqueName) {
            Stop-Script "Connector '$($connector.Name)' was not created by tenanttls and already uses the unique name $UniqueName. Remove it, or ask the provider, then run the script again."
        }
    }

    if ($null -ne $legacy) {
        Test-LegacyConnector $legacy
        if ($LegacyName -ne $ConnectorName -and $null -ne $named -and -not (Test-Ours $named)) {
            Stop-Script "Connector '$ConnectorName' exists and was not created by tenanttls, so the new connector cannot take that name. Rename or remove it, then run the script again."
        }
        if ($null -ne $backup) {
            $differences = Get-Differences $backup $legacy $SettingFields
            if ($differences.Count -gt 0) {
                Stop-Script "Connector '$BackupName' already exists with other settings than '$LegacyName' ($($differences -join '; ')). Remove or rename it, then run the script again."
            }
            $script:StaleBackup = $true
            Write-Done "'$BackupName' is an earlier copy with the same settings; it will be replaced"
        }
        $script:Legacy = $legacy
        $script:Original = $legacy
        Write-Done "'$LegacyName' is present and as expected"
        return
    }

    if ($null -eq $backup) {
        if ($null -ne $named -and (Test-Ours $named)) {
            Stop-Script "Connector '$ConnectorName' was created by tenanttls, but the original connector is neither '$LegacyName' nor '$BackupName'. Ask the provider before going on."
        }
        Stop-Script "Neither '$LegacyName' nor '$BackupName' exists, so the provider's connector is not present in $TenantDomain. Check the tenant, or ask the provider to write the script again."
    }
    if ($null -ne $named -and -not (Test-Ours $named)) {
        Stop-Script "Connector '$ConnectorName' exists beside '$BackupName' and was not created by tenanttls. Check which one is the original, then run the script again."
    }
    $script:Original = $backup
    Write-Done "'$LegacyName' was already renamed to '$BackupName'"
}

function Test-LegacyConnector($Legacy) {
    if ($null -ne $ExpectedLegacy) {
        $differences = Get-Differences $Legacy $ExpectedLegacy $SettingFields
        if ($differences.Count -gt 0) {
            Stop-Script "Connector '$LegacyName' changed since the provider saved it ($($differences -join '; ')). Ask the provider to write the script again."
        }
        return
    }
    $certificate = Get-Text $Legacy.TlsSenderCertificateName
    if ((Get-Text $Legacy.ConnectorType) -ne 'OnPremises') {
        Stop-Script "Connector '$LegacyName' is of type $($Legacy.ConnectorType), expected OnPremises. Ask the provider before going on."
    }
    if ($certificate -and $certificate -ne $LegacyCertificateName) {
        Write-Host "    note: '$LegacyName' matches the certificate name $certificate, not $LegacyCertificateName" -ForegroundColor Yellow
    }
}

function Get-UniqueDomain {
    return @(Get-MgDomain -All | Where-Object { (Get-Text $_.Id) -eq $UniqueName }) | Select-Object -First 1
}

function Add-UniqueDomain {
    Write-Step "Adding and verifying the domain $UniqueName"
    $domain = Get-UniqueDomain
    if ($null -eq $domain) {
        New-MgDomain -BodyParameter @{ id = $UniqueName } | Out-Null
        Write-Done "added $UniqueName"
        $domain = Get-UniqueDomain
    }
    if ($null -eq $domain) {
        Stop-Script "Microsoft Graph does not list $UniqueName after adding it. Wait a minute and run the script again."
    }
    if (ConvertTo-Boolean $domain.IsVerified) {
        Write-Done "$UniqueName is verified"
        return
    }

    $records = @(Get-MgDomainVerificationDnsRecord -DomainId $UniqueName | Where-Object { (Get-Text $_.RecordType) -eq 'Txt' })
    if ($records.Count -eq 0) {
        Stop-Script "Microsoft Graph returned no TXT verification record for $UniqueName. Run the script again later."
    }
    $text = Get-Text $records[0].AdditionalProperties['text']
    Write-Host "    TXT record: name $UniqueName, value $text"
    if ($ProofText -and $text -ne $ProofText) {
        Stop-Script "Microsoft Graph expects the TXT value $text, but the provider published $ProofText. Send the provider the value $text for $UniqueName, and run the script again when they confirm."
    }

    try {
        Confirm-MgDomain -DomainId $UniqueName | Out-Null
    }
    catch {
        Stop-Script "Microsoft could not verify $UniqueName ($($_.Exception.Message)). Send the provider this TXT record: name $UniqueName, value $text. Run the script again when they confirm it is published."
    }
    if (-not (ConvertTo-Boolean (Get-UniqueDomain).IsVerified)) {
        Stop-Script "$UniqueName is still not verified. Run the script again in a few minutes."
    }
    Write-Done "$UniqueName is verified"
}

function Wait-AcceptedDomain {
    Write-Step "Waiting until Exchange Online lists $UniqueName as an accepted domain"
    $deadline = (Get-Date).AddMinutes($AcceptedWaitMinutes)
    while ($true) {
        $accepted = @(Get-AcceptedDomain | Where-Object { (Get-Text $_.DomainName) -eq $UniqueName })
        if ($accepted.Count -gt 0) {
            Write-Done "$UniqueName is an accepted domain"
            return
        }
        if ((Get-Date) -gt $deadline) {
            Stop-Script "Exchange Online does not list $UniqueName after $AcceptedWaitMinutes minutes; this can take hours. Run the script again later: it goes on from here."
        }
        Write-Host '    not listed yet; checking again in 60 seconds'
        Start-Sleep -Seconds 60
    }
}

function Backup-LegacyConnector {
    # Read again: the wait for the accepted domain can take hours, and the connectors may have changed.
    Test-Connectors
    Write-Step "Keeping '$LegacyName' as '$BackupName'"
    if ($null -eq $script:Legacy) {
        Write-Done "already renamed"
        return
    }
    $script:Legacy | ConvertTo-Json -Depth 5 | Out-File -FilePath $SnapshotPath -Encoding utf8
    Write-Done "saved the settings of '$LegacyName' to $SnapshotPath"
    if ($script:StaleBackup) {
        Remove-InboundConnector -Identity $BackupName -Confirm:$false
        Write-Done "removed the earlier copy '$BackupName'"
    }
    Set-InboundConnector -Identity $LegacyName -Name $BackupName
    if ($null -eq (Find-Connector @(Get-InboundConnector) $BackupName)) {
        Stop-Script "Exchange Online does not list '$BackupName' after the rename. Run the script again."
    }
    Write-Done "renamed '$LegacyName' to '$BackupName'"
}

function New-ProviderConnector {
    Write-Step "Creating '$ConnectorName' on the certificate name $UniqueName"
    if ($CopyCloudServicesMailEnabled -and $null -ne $script:Original) {
        $NewConnector['CloudServicesMailEnabled'] = ConvertTo-Boolean $script:Original.CloudServicesMailEnabled
    }
    $existing = Find-Connector @(Get-InboundConnector) $ConnectorName
    if ($null -eq $existing) {
        New-InboundConnector @NewConnector | Out-Null
        Write-Done "created '$ConnectorName'"
        return
    }
    if (-not (Test-Ours $existing)) {
        Stop-Script "Connector '$ConnectorName' exists and was not created by tenanttls. Rename or remove it, then run the script again."
    }
    $changes = @{}
    foreach ($field in $DesiredFields) {
        if ($field -ne 'Name' -and (ConvertTo-Setting $field $existing.$field) -ne (ConvertTo-Setting $field $NewConnector[$field])) {
            $changes[$field] = $NewConnector[$field]
        }
    }
    if ($changes.Count -eq 0) {
        Write-Done "'$ConnectorName' already exists with the desired settings"
        return
    }
    Set-InboundConnector -Identity $ConnectorName @changes
    Write-Done "updated $($changes.Keys -join ', ') of '$ConnectorName'"
}

function Test-ProviderConnector {
    Write-Step "Checking '$ConnectorName' field by field"
    $connector = Find-Connector @(Get-InboundConnector) $ConnectorName
    if ($null -eq $connector) {
        Stop-Script "Exchange Online does not list '$ConnectorName' after creating it. Run the script again."
    }
    if (-not (ConvertTo-Boolean $connector.Enabled)) {
        Stop-Script "Exchange Online created '$ConnectorName' disabled ('created in a disabled state'). Ask Microsoft support to enable it, then run the script again."
    }
    $differences = Get-Differences $connector $NewConnector $DesiredFields
    if ($differences.Count -gt 0) {
        Stop-Script "'$ConnectorName' differs from the desired settings: $($differences -join '; '). Run the script again."
    }
    Write-Done "'$ConnectorName' is enabled and has the desired settings"
}

function Write-Summary {
    Write-Host ''
    Write-Host "Done. Tell the provider that $TenantDomain is upgraded:" -ForegroundColor Green
    Write-Host "  tenant:            $TenantDomain ($TenantId)"
    Write-Host "  accepted domain:   $UniqueName (verified)"
    Write-Host "  new connector:     '$ConnectorName' on the certificate name $UniqueName"
    Write-Host "  backup connector:  '$BackupName' (kept for rollback)"
    Write-Host "  script run id:     $RunId"
    Write-Host "Send them these files: $ConnectorsExportPath, $DomainsExportPath and the transcript $TranscriptPath"
    Write-Host "(and $SnapshotPath, if this run wrote it). The provider records the result with the two exports:"
    Write-Host "  tenanttls manual done $TenantId --export $(Split-Path -Leaf $ConnectorsExportPath) --export $(Split-Path -Leaf $DomainsExportPath)"
}
"""

UPGRADE_MAIN = r"""
Start-Transcript -Path $TranscriptPath | Out-Null
$exitCode = 0
try {
    Connect-Services $true
    Test-Tenant $true
    Test-Connectors
    Add-UniqueDomain
    Wait-AcceptedDomain
    Backup-LegacyConnector
    New-ProviderConnector
    Test-ProviderConnector
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
"""

ROLLBACK_FUNCTIONS = r"""
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
"""

ROLLBACK_MAIN = r"""
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
"""
