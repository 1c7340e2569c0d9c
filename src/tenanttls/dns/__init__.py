"""DNS for the provider's zone: publishing TXT records and the built-in authoritative server.

Modules:
    tsig       `TsigKey`: a TSIG key (RFC 8945) parsed from ``name:algorithm:base64secret`` (either order)
    publisher  `DnsPublisher` protocol and `Rfc2136Publisher` (RFC 2136 dynamic updates)
    zone       `ZoneRecords`: the built-in server's zone, kept in the ``dns_records`` table
    server     `BuiltinDnsServer`: a minimal authoritative server over UDP and TCP
    ratelimit  `WarningLimiter`: one warning per peer and reason each minute
"""
