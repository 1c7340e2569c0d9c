"""Fixtures of the audit tests: the export files and the placeholder provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenanttls.audit import ProviderProfile

EXPORTS = Path(__file__).parent / "exports"
UNIQUE = "k7q2m4x9d3f8h1j6n5p0r2t4vw.northwindtls.example"


@pytest.fixture
def profile() -> ProviderProfile:
    """The placeholder provider "Northwind" that the export files use."""
    return ProviderProfile("NorthwindInboundConnector", "*.northwind.example", "northwindtls.example")


@pytest.fixture
def exports_dir() -> Path:
    """The folder of export files (see exports/generate.py)."""
    return EXPORTS
