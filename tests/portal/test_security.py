"""Safe redirect targets and the Content-Security-Policy."""

from __future__ import annotations

import pytest

from tenanttls.portal.security import content_security_policy, safe_next_path


@pytest.mark.parametrize(
    "value",
    [
        "/tenants/72f988bf-86f1-41af-91ab-2d7cd011db47/connector",
        "/operator?state=grace&q=contoso",
        "/",
    ],
)
def test_next_path_keeps_local_paths(value):
    assert safe_next_path(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "/path\r\nSet-Cookie: x=y",
        "evil.example",
        "",
        None,
        "/" + "a" * 600,
    ],
)
def test_next_path_replaces_other_targets(value):
    assert safe_next_path(value, default="/home") == "/home"


def test_csp_forbids_framing_and_lists_form_targets():
    policy = content_security_policy(["https://login.example"])
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self' https://login.example" in policy
    assert "default-src 'none'" in policy
