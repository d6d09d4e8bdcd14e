"""The service's own settings, from `{{ cookiecutter.__env_prefix }}*` environment variables.

The toolkit's settings (Redis, Prometheus, proxy headers, Sentry, authentication of the `/c2c`
pages...) are the `C2C__*` variables read by `c2casgiutils.config`; the ones below are the
service's. Lists are comma-separated: `{{ cookiecutter.__env_prefix }}ALLOWED_HOSTS=api.example.com,localhost`.
"""

from __future__ import annotations

from c2casgiutils.config import StringList
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of the service."""

    model_config = SettingsConfigDict(env_prefix="{{ cookiecutter.__env_prefix }}", case_sensitive=False)

    development: bool = Field(
        default=False, description="Development mode: allows '*' in ALLOWED_HOSTS and CORS_ORIGINS"
    )
    allowed_hosts: StringList = Field(
        default_factory=lambda: ["localhost", "127.0.0.1"],
        description="Host header values served (TrustedHostMiddleware); others get 400",
    )
    cors_origins: StringList = Field(
        default_factory=list, description="Origins allowed to call the API from a browser (none by default)"
    )

    @model_validator(mode="after")
    def _no_wildcard_outside_development(self) -> Settings:
        # A wildcard host lets anyone's DNS name reach the service (host-header attacks); a wildcard
        # origin lets every web page read the API with the visitor's network position.
        if not self.development:
            for name in ("allowed_hosts", "cors_origins"):
                if "*" in getattr(self, name):
                    variable = "{{ cookiecutter.__env_prefix }}" + name.upper()
                    raise ValueError(
                        f"{variable}: '*' is refused outside development; list the real values "
                        "(or set {{ cookiecutter.__env_prefix }}DEVELOPMENT=true on a developer machine)"
                    )
        return self
