"""The portal's ID token checks, on tokens the simulated identity platform really issued."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from tenanttls.portal.oidc import SignInFailed
from tests.portal.conftest import ADMIN_A, TENANT_A


def _id_token(portal, nonce: str = "nonce-1") -> str:
    """Return an ID token for ADMIN_A, obtained through the authorize and token endpoints."""
    oidc = portal.context.oidc
    redirect_uri = portal.context.config.sign_in_redirect_uri
    httpx.post(f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": ADMIN_A}, verify=str(portal.simulator.ca_path))
    url = oidc.authorization_url("organizations", redirect_uri=redirect_uri, state="state-1", nonce=nonce)
    answer = httpx.get(url, verify=str(portal.simulator.ca_path))
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    return oidc.redeem_code("organizations", code, redirect_uri)


def test_valid_token_accepted(portal):
    claims = portal.context.oidc.validate_id_token(_id_token(portal), nonce="nonce-1")
    assert claims["tid"] == TENANT_A
    assert claims["preferred_username"] == ADMIN_A


def test_other_nonce_rejected(portal):
    with pytest.raises(SignInFailed, match="nonce does not match"):
        portal.context.oidc.validate_id_token(_id_token(portal), nonce="nonce-2")


def test_expired_token_rejected(portal):
    token = _id_token(portal)
    portal.clock.advance(2 * 3600)
    with pytest.raises(SignInFailed, match="has expired"):
        portal.context.oidc.validate_id_token(token, nonce="nonce-1")


def test_changed_claims_fail_signature(portal):
    token = _id_token(portal)
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["tid"] = "b0000000-0000-4000-8000-00000000000b"
    forged_payload = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    with pytest.raises(SignInFailed, match="rejected"):
        portal.context.oidc.validate_id_token(f"{header}.{forged_payload}.{signature}", nonce="nonce-1")


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
def test_other_algorithms_rejected(portal, algorithm):
    claims = jwt.decode(_id_token(portal), options={"verify_signature": False})
    token = jwt.encode(claims, "secret" if algorithm == "HS256" else None, algorithm=algorithm)
    with pytest.raises(SignInFailed, match="only RS256 is accepted"):
        portal.context.oidc.validate_id_token(token, nonce="nonce-1")


def test_code_redeemed_twice_rejected(portal):
    oidc = portal.context.oidc
    redirect_uri = portal.context.config.sign_in_redirect_uri
    httpx.post(f"{portal.simulator.base_url}/_simulator/signin/select", json={"user": ADMIN_A}, verify=str(portal.simulator.ca_path))
    answer = httpx.get(oidc.authorization_url("organizations", redirect_uri=redirect_uri, state="s", nonce="n"), verify=str(portal.simulator.ca_path))
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    oidc.redeem_code("organizations", code, redirect_uri)

    with pytest.raises(SignInFailed, match="AADSTS54005"):
        oidc.redeem_code("organizations", code, redirect_uri)
