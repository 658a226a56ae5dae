"""Drives the Business Central emulator's Entra endpoints over https with Microsoft's own MSAL for
Python, unmodified: a client secret, then certificates (a SHA-1 thumbprint, which MSAL signs RS256
with `x5t`, and a public certificate, which it signs PS256 with `x5t#S256` and `x5c`; its `exp`/`iat`
are floats), then a certificate the app does not know (AADSTS700027). Each token then reads the API.

MSAL insists on an https authority and token endpoint; the emulator runs with `--tls` and this
script trusts its authority through `REQUESTS_CA_BUNDLE` (which MSAL's requests session honours).
`instance_discovery=False` is MSAL's documented switch for an authority host it does not know: with
it on, MSAL would ask login.microsoftonline.com about 127.0.0.1.
"""

import datetime
import hashlib
import os
import sys

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

BASE = sys.argv[1].rstrip("/")
assert BASE.startswith("https://"), BASE
assert os.environ.get("REQUESTS_CA_BUNDLE"), "trust the emulator's authority"
SCOPE = ["https://api.businesscentral.dynamics.com/.default"]

creds = requests.get(f"{BASE}/__emulator/credentials").json()
tenant, company = creds["tenant_id"], creds["company_id"]
authority = f"{BASE}/{tenant}"


def app(credential):
    return msal.ConfidentialClientApplication(
        creds["client_id"],
        client_credential=credential,
        authority=authority,
        instance_discovery=False,
    )


def read_companies(result):
    assert "access_token" in result, result
    r = requests.get(
        f"{BASE}/v2.0/{tenant}/production/api/v2.0/companies({company})/purchaseOrders?$top=2",
        headers={"Authorization": f"Bearer {result['access_token']}"},
    )
    r.raise_for_status()
    assert len(r.json()["value"]) == 2, r.text


# 1. Client secret.
read_companies(app(creds["client_secret"]).acquire_token_for_client(scopes=SCOPE))


# 2. Certificates: the app registration gets one; MSAL signs with its key.
def certificate():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ironbridge-emulator-client")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    sha1 = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return key_pem, cert_pem, sha1


key_pem, cert_pem, sha1 = certificate()
requests.patch(f"{BASE}/__emulator/settings", json={"certificate_pem": cert_pem}).raise_for_status()
read_companies(
    app({"private_key": key_pem, "thumbprint": sha1}).acquire_token_for_client(scopes=SCOPE)
)
read_companies(
    app({"private_key": key_pem, "public_certificate": cert_pem}).acquire_token_for_client(
        scopes=SCOPE
    )
)

# 3. A certificate the app registration does not have.
other_key, _, other_sha1 = certificate()
refused = app({"private_key": other_key, "thumbprint": other_sha1}).acquire_token_for_client(
    scopes=SCOPE
)
assert refused.get("error") == "invalid_client", refused
assert 700027 in refused.get("error_codes", []), refused
assert other_sha1.upper() in refused["error_description"], refused

print("bc_msal: secret, RS256 x5t and PS256 x5t#S256 certificates, unknown certificate refused")
