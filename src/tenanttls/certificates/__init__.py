"""Unique certificate identities: name allocation, issuers, encrypted key storage and renewal.

Modules:
    names        random labels and the unique name ``<label>.<zone>``
    identities   `IdentityService`: one label per tenant, stored once and never reused
    keystore     `KeyStore`: private keys encrypted with the key-encryption key (AES-GCM)
    issuer       the `Issuer` protocol, `IssuedCertificate` and `check_certificate`
    local_ca     `LocalCaIssuer`: the provider's own CA, for the embedded default and tests
    acme_issuer  `AcmeIssuer`: RFC 8555 with DNS-01 through a `DnsPublisher`
    renewal      `RenewalSchedule`: which certificates are due and how many orders fit now
    service      `CertificateService`: issue, store, load for the relay, renew
    rekey        `reencrypt_keys`: move every stored key to a new key-encryption key
"""
