"""Names for what the tokens carry: the claims of the session and OAuth state tokens, and the
encrypted GitHub tokens inside a session.

The wire format is the README's "Session token" section (format 1); the short names on the wire
appear only here. `Keys` (`_tokens`) signs and verifies plain claim dictionaries and sets the
registered claims (`iss`, `typ`, `ver`, `sid` when absent, `iat`, `exp`, and `aud` for the state);
the models below turn those dictionaries into named fields and back. Reading never raises: a claim
of an unexpected type reads as absent, and the code that needs it refuses the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final


class Claim:
    """The claim names on the wire."""

    ISSUER: Final = "iss"
    """`c2c-auth`."""
    KIND: Final = "typ"
    """`session` or `oauth-state` (`TokenKind`)."""
    FORMAT: Final = "ver"
    """The session format version (1)."""
    SESSION_ID: Final = "sid"
    """The session id (128 random bits), kept across refreshes; a logout refuses it."""
    ISSUED_AT: Final = "iat"
    EXPIRES_AT: Final = "exp"
    AUDIENCE: Final = "aud"
    """State token only: a session has none (0.14-style application code decodes it without one)."""
    METHOD: Final = "mth"
    """The mode of the session: `AuthMethod.GITHUB_OAUTH` or `AuthMethod.SECRET`."""
    COOKIE_PATH: Final = "pth"
    """The cookie's path, to clear it where it was set."""
    LOGIN: Final = "login"
    DISPLAY_NAME: Final = "display_name"
    URL: Final = "url"
    GITHUB_TOKENS: Final = "ght"
    """The GitHub tokens (`GitHubTokens`), AES-GCM encrypted."""
    SECRET_FINGERPRINT: Final = "sfp"  # noqa: S105 (a claim name, not a password)
    """Secret mode: a keyed fingerprint of the shared secret, never the secret."""

    STATE_HASH: Final = "sth"
    """State token: SHA-256 of the OAuth `state` parameter."""
    PKCE: Final = "pkce"
    """State token: the PKCE verifier, encrypted (`{"v": verifier}`)."""
    CAME_FROM: Final = "cf"
    """State token: where to go after the login (same origin, checked again on use)."""
    REDIRECT_URI: Final = "ru"
    """State token: the `redirect_uri` of the authorize request, sent again with the code."""


PKCE_VERIFIER: Final = "v"
"""The key of the verifier in the encrypted `pkce` claim."""

SET_BY_KEYS: Final = frozenset({Claim.ISSUER, Claim.KIND, Claim.FORMAT, Claim.ISSUED_AT, Claim.EXPIRES_AT})
"""Claims `Keys.encode` sets itself (a session keeps its `sid`)."""


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) else None


def _number(claims: Mapping[str, Any], name: str) -> int | float | None:
    value = claims.get(name)
    return value if isinstance(value, int | float) else None


@dataclass(frozen=True, kw_only=True)
class SessionClaims:
    """The claims of a session token, by name.

    `to_jwt()` gives what `Keys.encode("session", ...)` signs (absent fields are left out);
    `from_jwt()` reads what `Keys.decode` verified, or an unverified token for harmless hints (the
    cookie path). Claims this version does not know (added by a newer one) are kept in `extra`, so a
    refresh passes them on.
    """

    method: str | None = None
    session_id: str | None = None
    login: str | None = None
    display_name: str | None = None
    url: str | None = None
    github_tokens: str | None = None
    """Encrypted `GitHubTokens` (`Keys.decrypt(..., "session")`)."""
    secret_fingerprint: str | None = None
    cookie_path: str | None = None
    expires_at: int | float | None = None
    """Read only: `Keys.encode` sets the expiry from the lifetime."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("method", Claim.METHOD),
        ("session_id", Claim.SESSION_ID),
        ("login", Claim.LOGIN),
        ("display_name", Claim.DISPLAY_NAME),
        ("url", Claim.URL),
        ("github_tokens", Claim.GITHUB_TOKENS),
        ("secret_fingerprint", Claim.SECRET_FINGERPRINT),
        ("cookie_path", Claim.COOKIE_PATH),
    )

    @classmethod
    def from_jwt(cls, claims: Mapping[str, Any]) -> SessionClaims:
        """The named claims of a decoded session token."""
        known = {name for _, name in cls._FIELDS} | SET_BY_KEYS
        return cls(
            **{attribute: _text(claims, name) for attribute, name in cls._FIELDS},
            expires_at=_number(claims, Claim.EXPIRES_AT),
            extra={name: value for name, value in claims.items() if name not in known},
        )

    def to_jwt(self) -> dict[str, Any]:
        """The claims to sign (without those `Keys.encode` sets)."""
        claims = {name: getattr(self, attribute) for attribute, name in self._FIELDS}
        return {**self.extra, **{name: value for name, value in claims.items() if value is not None}}


@dataclass(frozen=True, kw_only=True)
class GitHubTokens:
    """The GitHub tokens of a session, encrypted in its `ght` claim (times are Unix seconds)."""

    access_token: str = field(repr=False)  # never in a log line or an error report
    access_expires_at: int | float | None = None
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: int | float | None = None

    _FIELDS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("access_token", "at"),
        ("access_expires_at", "ate"),
        ("refresh_token", "rt"),
        ("refresh_expires_at", "rte"),
    )

    @classmethod
    def from_jwt(cls, data: Mapping[str, Any]) -> GitHubTokens | None:
        """The tokens of a decrypted `ght` claim; None without an access token."""
        access = _text(data, "at")
        if access is None:
            return None
        return cls(
            access_token=access,
            access_expires_at=_number(data, "ate"),
            refresh_token=_text(data, "rt"),
            refresh_expires_at=_number(data, "rte"),
        )

    def to_jwt(self) -> dict[str, Any]:
        """The object to encrypt (absent fields left out)."""
        values = {name: getattr(self, attribute) for attribute, name in self._FIELDS}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class OAuthState:
    """The claims of an OAuth state token (one login flow)."""

    state_hash: str | None = None
    pkce: str | None = None
    """The encrypted PKCE verifier (`{PKCE_VERIFIER: verifier}`, kind `oauth-state`)."""
    came_from: str | None = None
    redirect_uri: str | None = None

    @classmethod
    def from_jwt(cls, claims: Mapping[str, Any]) -> OAuthState:
        """The named claims of a decoded state token."""
        return cls(
            state_hash=_text(claims, Claim.STATE_HASH),
            pkce=_text(claims, Claim.PKCE),
            came_from=_text(claims, Claim.CAME_FROM),
            redirect_uri=_text(claims, Claim.REDIRECT_URI),
        )

    def to_jwt(self) -> dict[str, Any]:
        """The claims to sign (`cf` is always present, null without a target, as in format 1)."""
        return {
            Claim.STATE_HASH: self.state_hash,
            Claim.PKCE: self.pkce,
            Claim.CAME_FROM: self.came_from,
            Claim.REDIRECT_URI: self.redirect_uri,
        }
