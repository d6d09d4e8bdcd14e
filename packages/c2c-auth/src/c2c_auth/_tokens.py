"""Signed cookies (JWT) and encrypted claims.

Every token carries `iss`, `aud` and `typ` claims naming its kind, so a state cookie can never be
read as a session (c2casgiutils 0.14 accepted one for the other). The algorithm is pinned to the
configured HMAC one, and `exp` and `iat` are required. Provider tokens inside a session are
encrypted with AES-GCM, so the cookie never exposes them even to someone who reads it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any, Literal

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ISSUER = "c2c-auth"
TokenKind = Literal["session", "oauth-state"]
# The audience of each kind: distinct, so that a token of one kind fails the audience check of the other.
AUDIENCES: dict[TokenKind, str] = {"session": "c2c-auth:session", "oauth-state": "c2c-auth:github-callback"}
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "typ"]


class InvalidToken(Exception):
    """The token is missing, malformed, tampered with, expired or of another kind."""


class Keys:
    """The keys derived from one master secret: JWT signing and claim encryption are independent.

    The master is `C2C__AUTH__JWT__SECRET`, or in secret mode without it the shared secret, so
    that every replica derives the same keys without extra configuration.
    """

    def __init__(self, master: str, algorithm: str) -> None:
        raw = master.encode()
        self.algorithm = algorithm
        # Derived keys (HMAC as a PRF with distinct labels) have the hash's length whatever the master's length
        # (RFC 7518 section 3.2: at least as long as the hash output).
        length = {"HS256": 32, "HS384": 48, "HS512": 64}[algorithm]
        self.signing = hmac.new(raw, b"c2c-auth/jwt-signing/v1", hashlib.sha512).digest()[:length]
        self._encryption = AESGCM(hmac.new(raw, b"c2c-auth/claim-encryption/v1", hashlib.sha256).digest())
        self.fingerprint_key = hmac.new(raw, b"c2c-auth/fingerprint/v1", hashlib.sha256).digest()

    def fingerprint(self, value: str) -> str:
        """A keyed digest of `value` (for instance the shared secret): identifies it without revealing it."""
        return hmac.new(self.fingerprint_key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def encrypt(self, data: dict[str, Any], kind: TokenKind) -> str:
        """Encrypt a JSON object; the token kind is authenticated data, so a blob cannot move between kinds."""
        nonce = os.urandom(12)
        sealed = self._encryption.encrypt(nonce, json.dumps(data, separators=(",", ":")).encode(), kind.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decrypt(self, blob: object, kind: TokenKind) -> dict[str, Any]:
        """Decrypt what `encrypt` produced; raise `InvalidToken` on anything else."""
        if not isinstance(blob, str):
            raise InvalidToken("encrypted claim is not a string")
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
            data = json.loads(self._encryption.decrypt(raw[:12], raw[12:], kind.encode()))
        except (ValueError, InvalidTag) as error:
            raise InvalidToken("encrypted claim cannot be decrypted") from error
        if not isinstance(data, dict):
            raise InvalidToken("encrypted claim is not an object")
        return data

    def encode(self, kind: TokenKind, claims: dict[str, Any], lifetime: float, now: float | None = None) -> str:
        """Sign `claims` as a token of `kind` valid for `lifetime` seconds."""
        issued = int(time.time() if now is None else now)
        payload = {
            **claims,
            "iss": ISSUER,
            "aud": AUDIENCES[kind],
            "typ": kind,
            "iat": issued,
            "exp": issued + max(1, int(lifetime)),
        }
        return jwt.encode(payload, self.signing, algorithm=self.algorithm, headers={"typ": "JWT"})

    def decode(self, token: str | None, kind: TokenKind) -> dict[str, Any]:
        """Verify a token of `kind`: signature with the pinned algorithm, issuer, audience, type, `exp`, `iat`."""
        if not token:
            raise InvalidToken("no token")
        if len(token) > 8192:
            raise InvalidToken("token too long")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.signing,
                algorithms=[self.algorithm],
                audience=AUDIENCES[kind],
                issuer=ISSUER,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise InvalidToken(f"{kind} token rejected: {type(error).__name__}") from error
        if claims.get("typ") != kind:
            raise InvalidToken(f"not a {kind} token")
        return claims


def unverified_claims(token: str | None) -> dict[str, Any]:
    """The claims of a token without any check; only for harmless hints (the path to clear a cookie on)."""
    if not token or len(token) > 8192:
        return {}
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        return {}
    return claims
