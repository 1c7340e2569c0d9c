"""tenanttls: move Microsoft 365 tenants from a shared TLS certificate name to a unique one."""

__version__ = "0.1.0"
