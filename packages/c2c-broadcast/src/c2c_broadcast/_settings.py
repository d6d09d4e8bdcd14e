"""The `broadcast` settings section (`C2C__BROADCAST__*`) and the settings class that composes it."""

from __future__ import annotations

import datetime

from pydantic import Field, field_validator, model_validator

from c2c_config import CoreSettings, Duration, SecretList, SecretText, Section


class BroadcastSettings(Section):
    """Broadcast of function calls to every replica (local, or through Redis when Redis is configured)."""

    secret: SecretText | None = Field(
        default=None,
        description=(
            "Shared secret to sign broadcast messages and answers with HMAC-SHA256; when set, unsigned, "
            "forged or replayed messages trigger nothing (all replicas must share it)"
        ),
    )
    accepted_secrets: SecretList = Field(
        default_factory=list,
        description=(
            "Other secrets whose signatures are accepted on receipt, never used to sign (comma-separated, or a "
            "JSON array): rotating C2C__BROADCAST__SECRET without a gap (README, Rotating the secret)"
        ),
    )
    signature_max_age: Duration = Field(
        default=datetime.timedelta(seconds=60),
        description="How old a signed message may be before it is refused (bounds replays; clocks must agree)",
    )
    default_timeout: Duration = Field(
        default=datetime.timedelta(seconds=10),
        description="How long a broadcast waits for answers when the caller gives no timeout",
    )
    heartbeat_interval: Duration = Field(
        default=datetime.timedelta(seconds=5),
        description="How often a replica refreshes its entry in the Redis registry of live replicas",
    )
    replica_ttl: Duration = Field(
        default=datetime.timedelta(seconds=15),
        description="How long a registry entry lives without a heartbeat (a killed replica is forgotten after it)",
    )
    legacy_wait: Duration = Field(
        default=datetime.timedelta(seconds=2),
        description=(
            "Once every registered replica answered, how much longer a call waits for the answers of the other "
            "exact-channel subscribers (c2casgiutils 0.14 replicas during a mixed rollout, counted with PUBSUB "
            "NUMSUB; pattern subscribers are not counted); 0 stops at once"
        ),
    )
    max_message_size: int = Field(
        default=1024 * 1024,
        ge=256,
        description=(
            "Largest message or answer in bytes, well under Redis' pub/sub output-buffer limits (32 MB hard, "
            "8 MB soft by default); a bigger call raises MessageTooLargeError before reaching Redis, a bigger "
            "answer becomes an error answer, a bigger received message is dropped with a log line"
        ),
    )
    answer_queue_size: int = Field(
        default=1000,
        ge=1,
        description=(
            "Most answers waiting to be published in a process; an answer that finds it full waits up to 1 s, "
            "then is dropped, counted (answers_dropped) and logged, and its caller sees a missing answer"
        ),
    )
    answer_publishers: int = Field(
        default=4,
        ge=1,
        le=100,
        description=(
            "How many answers a process publishes at once, each on a Redis connection of the pool "
            "(C2C__REDIS__MAX_CONNECTIONS)"
        ),
    )
    max_pending_handlers: int = Field(
        default=1000,
        ge=1,
        description=(
            "Most handler calls running at once in a process; then the listener waits up to 1 s for one to end, "
            "and drops the message with a log line"
        ),
    )
    reconnect_max_delay: Duration = Field(
        default=datetime.timedelta(seconds=10),
        description="Longest pause between two reconnection attempts to Redis (exponential back-off up to it)",
    )
    connect_timeout: Duration = Field(
        default=datetime.timedelta(seconds=5),
        description="How long startup and subscribe wait for Redis before going on (retrying in the background)",
    )

    @field_validator("default_timeout")
    @classmethod
    def _positive_default_timeout(cls, value: datetime.timedelta) -> datetime.timedelta:
        if value <= datetime.timedelta(0):
            raise ValueError("the default broadcast timeout must be longer than 0 s (a call would wait for nobody)")
        return value

    @field_validator("secret")
    @classmethod
    def _empty_secret_is_none(cls, value: SecretText | None) -> SecretText | None:
        if value is not None and not value.get_secret_value():
            return None
        return value

    @model_validator(mode="after")
    def _accepted_needs_a_secret(self) -> BroadcastSettings:
        if self.accepted_secrets and self.secret is None:
            raise ValueError(
                "C2C__BROADCAST__ACCEPTED_SECRETS is set without C2C__BROADCAST__SECRET: messages are signed with"
                " the secret and checked against both; set the secret too"
            )
        return self

    @model_validator(mode="after")
    def _ttl_covers_heartbeats(self) -> BroadcastSettings:
        if self.heartbeat_interval <= datetime.timedelta(0):
            raise ValueError("C2C__BROADCAST__HEARTBEAT_INTERVAL must be positive")
        if self.replica_ttl <= self.heartbeat_interval:
            raise ValueError(
                "C2C__BROADCAST__REPLICA_TTL must be longer than C2C__BROADCAST__HEARTBEAT_INTERVAL "
                "(two or three intervals), or live replicas would vanish from the registry"
            )
        return self


class Settings(CoreSettings):
    """`CoreSettings` plus the `broadcast` section: what c2c-broadcast reads (`get_settings(Settings)`)."""

    broadcast: BroadcastSettings = Field(default_factory=BroadcastSettings, description="Broadcast")
