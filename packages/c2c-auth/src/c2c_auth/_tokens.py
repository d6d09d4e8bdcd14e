"""Signed cookies (JWT) and encrypted claims: the session token and the OAuth state token.

Session token (format version 1, see the README's "Session token" section): a JWT signed with the
master secret itself (`C2C__AUTH__JWT__SECRET`, the configured HMAC algorithm) and without `aud`,
so that application code written for c2casgiutils 0.14 (`jwt.decode(cookie, secret,
algorithms=["HS256"])`) reads it. Its claims: `iss`, `typ="session"`, `ver=1`, `sid` (session id),
`iat`, `exp`, `mth` (mode), `pth` (cookie path); in GitHub mode 0.14's `login`, `display_name`
and `url` and `ght` (the GitHub tokens, AES-GCM encrypted); in secret mode `sfp` (a keyed
fingerprint of the shared secret, never the secret). Later additions are optional claims: `ver`
stays 1 and readers ignore claims they do not know, so a format change never logs users out.

OAuth state token: signed with a key *derived* from the master secret, with `aud` and
`typ="oauth-state"`: a state token never verifies as a session and a session never verifies as a
state token (different key, different kind, `aud` present or absent).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import warnings
from typing import Any, Literal

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from c2c_auth._claims import Claim

ISSUER = "c2c-auth"
TokenKind = Literal["session", "oauth-state"]
SESSION_FORMAT = 1
"""The session token's format version (`ver`); later additions are optional claims, it stays 1."""
STATE_AUDIENCE = "c2c-auth:github-callback"
SESSION_REQUIRED_CLAIMS = [Claim.EXPIRES_AT, Claim.ISSUED_AT, Claim.ISSUER, Claim.KIND, Claim.FORMAT, Claim.SESSION_ID]
STATE_REQUIRED_CLAIMS = [Claim.EXPIRES_AT, Claim.ISSUED_AT, Claim.ISSUER, Claim.AUDIENCE, Claim.KIND]
MAX_TOKEN_LENGTH = 8192


def new_session_id() -> str:
    """A fresh session id (128 random bits)."""
    return secrets.token_urlsafe(16)


class InvalidToken(Exception):
    """The token is missing, malformed, tampered with, expired or of another kind."""


class Keys:
    """The keys of one master secret: session signing, state signing, claim encryption, fingerprints, devices.

    In GitHub mode (and whenever `C2C__AUTH__JWT__SECRET` is set) the master is the JWT secret and
    the session is signed with it as is (`session_key_is_master`), as c2casgiutils 0.14 did. In
    secret mode without a JWT secret the master is the shared secret and the session is signed with
    a key derived from it. The state token, the encryption and the fingerprints always use derived
    keys (HMAC as a PRF with distinct labels), independent of each other.
    """

    def __init__(self, master: str, algorithm: str, *, session_key_is_master: bool = True) -> None:
        raw = master.encode()
        self.algorithm = algorithm
        # Derived keys have the hash's length whatever the master's (RFC 7518 section 3.2).
        length = {"HS256": 32, "HS384": 48, "HS512": 64}[algorithm]
        self.state_signing = hmac.new(raw, b"c2c-auth/jwt-signing/v1", hashlib.sha512).digest()[:length]
        derived_session = hmac.new(raw, b"c2c-auth/session-signing/v1", hashlib.sha512).digest()[:length]
        self.session_signing = raw if session_key_is_master else derived_session
        self._encryption = AESGCM(hmac.new(raw, b"c2c-auth/claim-encryption/v1", hashlib.sha256).digest())
        self.fingerprint_key = hmac.new(raw, b"c2c-auth/fingerprint/v1", hashlib.sha256).digest()
        self.device_key = hmac.new(raw, b"c2c-auth/device-cookie/v1", hashlib.sha256).digest()
        """Signs the device cookies of secret mode (`_devices`)."""

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
        """Sign `claims` as a token of `kind` valid for `lifetime` seconds.

        A session gets `ver` and, unless `claims` carries one, a new `sid`.
        """
        issued = int(time.time() if now is None else now)
        payload: dict[str, Any] = {**claims, Claim.ISSUER: ISSUER, Claim.KIND: kind, Claim.ISSUED_AT: issued}
        payload[Claim.EXPIRES_AT] = issued + max(1, int(lifetime))
        if kind == "session":
            payload.pop(Claim.AUDIENCE, None)
            payload[Claim.FORMAT] = SESSION_FORMAT
            if not isinstance(payload.get(Claim.SESSION_ID), str) or not payload[Claim.SESSION_ID]:
                payload[Claim.SESSION_ID] = new_session_id()
            key = self.session_signing
        else:
            payload[Claim.AUDIENCE] = STATE_AUDIENCE
            key = self.state_signing
        with warnings.catch_warnings():
            # A short JWT secret is reported once by `startup()`, not at every cookie.
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            return jwt.encode(payload, key, algorithm=self.algorithm, headers={"typ": "JWT"})

    def decode(self, token: str | None, kind: TokenKind) -> dict[str, Any]:
        """Verify a token of `kind`: key and pinned algorithm, `iss`, `typ`, `exp`, `iat`, and per kind
        `ver`/`sid` and no `aud` (session) or the state audience (state)."""
        if not token:
            raise InvalidToken("no token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too long")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                if kind == "session":
                    # No `audience`: a token that has an `aud` claim (a state token) fails.
                    claims: dict[str, Any] = jwt.decode(
                        token,
                        self.session_signing,
                        algorithms=[self.algorithm],
                        issuer=ISSUER,
                        options={"require": SESSION_REQUIRED_CLAIMS},
                    )
                else:
                    claims = jwt.decode(
                        token,
                        self.state_signing,
                        algorithms=[self.algorithm],
                        audience=STATE_AUDIENCE,
                        issuer=ISSUER,
                        options={"require": STATE_REQUIRED_CLAIMS, "strict_aud": True},
                    )
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            raise InvalidToken(f"{kind} token rejected: {type(error).__name__}") from error
        if claims.get(Claim.KIND) != kind:
            raise InvalidToken(f"not a {kind} token")
        if kind == "session":
            version = claims.get(Claim.FORMAT)
            if type(version) is not int or version != SESSION_FORMAT:
                raise InvalidToken(f"session format {version!r} is not {SESSION_FORMAT}")
            if not isinstance(claims.get(Claim.SESSION_ID), str) or not claims[Claim.SESSION_ID]:
                raise InvalidToken("session without an id")
        return claims


def unverified_claims(token: str | None) -> dict[str, Any]:
    """The claims of a token without any check; only for harmless hints (the path to clear a cookie on)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return {}
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError):
        return {}
    return claims
