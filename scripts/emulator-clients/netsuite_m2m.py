"""Drives the NetSuite emulator's OAuth 2.0 machine-to-machine flow as a customer's own script would:
it makes its key and certificate with `cryptography`, registers the certificate (the emulator's
admin API stands for NetSuite's "OAuth 2.0 Client Credentials (M2M) Setup" page), signs its own
client assertion with PyJWT (PS256 with RSA 3072, ES256 with P-256, ES512 with P-521, the certificate
id as `kid`), exchanges it for an access token, and runs SuiteQL with it: Oracle's own GROUP BY
example, and datetimes read in UTC with SYS_EXTRACT_UTC from an account in America/Los_Angeles.
A tampered assertion and one naming an unknown certificate are refused.
"""

import datetime
import sys

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

BASE = sys.argv[1].rstrip("/")
TOKEN_URL = f"{BASE}/services/rest/auth/oauth2/v1/token"
CLIENT_ID = "ironbridge-emulator-m2m-client"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def admin(method, path, **kw):
    r = requests.request(method, f"{BASE}/__emulator{path}", **kw)
    r.raise_for_status()
    return r.json() if r.content else None


def certificate(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ironbridge-m2m")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=700))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def assertion(key, alg, kid, now):
    claims = {
        "iss": CLIENT_ID,
        "scope": ["restlets", "rest_webservices"],
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 3000,
    }
    return jwt.encode(claims, pem(key), algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def token(client_assertion):
    return requests.post(
        TOKEN_URL,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
        },
    )


def suiteql(access_token, q):
    r = requests.post(
        f"{BASE}/services/rest/query/v1/suiteql?limit=10",
        json={"q": q},
        headers={"Authorization": f"Bearer {access_token}", "Prefer": "transient"},
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


# The emulator's clock, not this machine's: assertions are checked against the account's time.
now = admin("GET", "/clock")["now_ms"] // 1000
assert admin("GET", "/settings")["time_zone"] != "UTC", "a non-UTC account, as most are"

keys = {
    "PS256": rsa.generate_private_key(public_exponent=65537, key_size=3072),
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "ES512": ec.generate_private_key(ec.SECP521R1()),
}
for alg, key in keys.items():
    kid = f"cert-{alg.lower()}"
    admin(
        "POST",
        "/netsuite/m2m-clients",
        json={"client_id": CLIENT_ID, "certificate_id": kid, "certificate_pem": certificate(key)},
    )
    r = token(assertion(key, alg, kid, now))
    assert r.status_code == 200, (alg, r.status_code, r.text)
    access = r.json()["access_token"]

    grouped = suiteql(access, "SELECT email, COUNT(*) as count FROM transaction GROUP BY email")
    assert grouped and all("count" in row for row in grouped), grouped

    rows = suiteql(
        access,
        "SELECT t.id, TO_CHAR(t.lastmodifieddate, 'YYYY-MM-DD HH24:MI:SS') AS local_time, "
        "TO_CHAR(SYS_EXTRACT_UTC(t.lastmodifieddate), 'YYYY-MM-DD HH24:MI:SS') AS utc_time "
        "FROM transaction t WHERE t.type = 'PurchOrd' ORDER BY t.id",
    )
    assert rows, rows
    for row in rows:
        local = datetime.datetime.fromisoformat(row["local_time"])
        utc = datetime.datetime.fromisoformat(row["utc_time"])
        # Los Angeles is seven or eight hours behind UTC.
        assert (utc - local) in (datetime.timedelta(hours=7), datetime.timedelta(hours=8)), row

# Refused: a signature that does not verify, and a certificate id NetSuite does not know.
good = assertion(keys["ES256"], "ES256", "cert-es256", now)
head, body, sig = good.split(".")
tampered = f"{head}.{body}.{sig[:-4]}AAAA"
for bad in (tampered, assertion(keys["ES256"], "ES256", "no-such-certificate", now)):
    r = token(bad)
    assert r.status_code in (400, 401) and "error" in r.json(), (r.status_code, r.text)

print("netsuite_m2m (own PS256, ES256 and ES512 assertions, SuiteQL in a Los Angeles account): OK")
