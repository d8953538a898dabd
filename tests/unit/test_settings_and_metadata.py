"""Settings validation and approval metadata checks (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from tagwarden.approvals import metadata as meta
from tagwarden.config import Settings, describe_error
from tagwarden.errors import InvalidInput


def test_defaults_match_the_seeds() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.port == 4002
    assert settings.check_interval_minutes == 60
    assert settings.auto_process_approved is True
    assert settings.database_url == "sqlite+aiosqlite:///./tagwarden.db"


def test_plain_postgres_urls_get_the_async_driver() -> None:
    url = Settings(database_url="postgresql://u@h:5432/db").database_url
    assert url == "postgresql+asyncpg://u@h:5432/db"
    assert Settings(database_url="sqlite:///x.db").database_url == "sqlite+aiosqlite:///x.db"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"TAGWARDEN_PORT": "http"}, "TAGWARDEN_PORT"),
        ({"TAGWARDEN_PORT": "70000"}, "TAGWARDEN_PORT"),
        ({"TAGWARDEN_CHECK_INTERVAL_MINUTES": "0"}, "TAGWARDEN_CHECK_INTERVAL_MINUTES"),
        ({"TAGWARDEN_DATABASE_URL": "mysql://x"}, "TAGWARDEN_DATABASE_URL"),
        ({"TAGWARDEN_AUTO_PROCESS_APPROVED": "perhaps"}, "TAGWARDEN_AUTO_PROCESS_APPROVED"),
        ({"TAGWARDEN_ENVIRONMENT": "production"}, "TAGWARDEN_SECRET_KEY"),
    ],
)
def test_a_bad_value_is_named_in_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert needle in describe_error(caught.value)


def test_metadata_architectures_keep_order_and_drop_repeats() -> None:
    assert meta.architectures({"architectures": ["amd64", "arm64", "amd64", ""]}) == [
        "amd64",
        "arm64",
    ]
    assert meta.architectures({}) == []


def test_platform_digest_reads_either_shape() -> None:
    assert meta.platform_digest({"platforms": {"arm64": "sha256:a"}}, "arm64") == "sha256:a"
    assert meta.platform_digest({"platforms": {"arm64": {"digest": "sha256:b"}}}, "arm64") == (
        "sha256:b"
    )
    assert meta.platform_digest({}, "arm64") is None


def test_timestamps_are_parsed_as_utc() -> None:
    assert meta.parse_timestamp("2025-10-17T10:30:00Z") == datetime(
        2025, 10, 17, 10, 30, tzinfo=UTC
    )
    assert meta.parse_timestamp("2025-10-17T10:30:00") == datetime(2025, 10, 17, 10, 30, tzinfo=UTC)
    assert meta.parse_timestamp("yesterday") is None


@pytest.mark.parametrize(
    "metadata",
    [
        {"architectures": "amd64"},
        {"architectures": []},
        {"architectures": ["amd64"], "digest": "abc"},
        {"architectures": ["amd64"], "last_updated": "soon"},
        {"architectures": ["amd64"], "platforms": ["amd64"]},
    ],
)
def test_metadata_that_activation_could_not_use_is_refused(metadata: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        meta.validate(metadata, require_architectures=True)
