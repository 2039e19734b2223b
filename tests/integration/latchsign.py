"""latchsign: signs requests to Latch with an OAuth client's signing key (README, "Signed
requests"). Standard library only, so it can be copied into a client as it is.

    Latch-Signature: keyId="<client_id>", ts=<unix seconds>, nonce="<16-64 of A-Za-z0-9_->",
                     sig="<base64url HMAC-SHA256, unpadded>"

    signed text = "LATCH-HMAC-SHA256\\n" + METHOD + "\\n" + PATH + "\\n" + TS + "\\n" + NONCE
                  + "\\n" + hex(SHA-256(body))

The HMAC key is the signing key text ("lsk_..."), PATH the request target exactly as sent
(query string included), the body the exact bytes sent (b"" when there is none). Send the
body you signed byte for byte: let the HTTP library not re-encode it.

    import latchsign
    body = urllib.parse.urlencode({"token": tok}).encode()
    hdr = latchsign.header(client_id, signing_key, "POST", "/oauth2/introspect", body)
    httpx.post(url + "/oauth2/introspect", content=body, headers={
        "content-type": "application/x-www-form-urlencoded",
        "authorization": basic, "latch-signature": hdr})

Run as a script to print a header: python3 latchsign.py CLIENT_ID KEY METHOD PATH [BODY_FILE]
"""

import base64
import hashlib
import hmac
import secrets
import sys
import time

SCHEME = "LATCH-HMAC-SHA256"


def new_nonce():
    """22 base64url characters: 128 random bits."""
    return secrets.token_urlsafe(16)


def signed_text(method, path, ts, nonce, body=b""):
    """The text the HMAC covers."""
    if isinstance(body, str):
        body = body.encode()
    return "\n".join([SCHEME, method, path, str(ts), nonce, hashlib.sha256(body or b"").hexdigest()]).encode()


def sign(key, method, path, ts, nonce, body=b""):
    """The sig value: unpadded base64url of HMAC-SHA256 keyed with the signing key text."""
    mac = hmac.new(key.encode(), signed_text(method, path, ts, nonce, body), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def header(client_id, key, method, path, body=b"", ts=None, nonce=None):
    """A Latch-Signature value for one request (a fresh nonce and the current time unless given)."""
    ts = int(time.time()) if ts is None else ts
    nonce = new_nonce() if nonce is None else nonce
    return f'keyId="{client_id}", ts={ts}, nonce="{nonce}", sig="{sign(key, method, path, ts, nonce, body)}"'


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__.split("\n\n")[-1])
    data = open(sys.argv[5], "rb").read() if len(sys.argv) == 6 else b""
    print(header(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], data))
