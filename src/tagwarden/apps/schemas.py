"""App definitions in and out: the container configuration, in Compose's vocabulary.

The shape is the one contracts/device-state.schema.json gives ``config``; the checks that
need the server's settings (bind-mount roots) are the service's.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import shlex
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from tagwarden.devices.models import App
from tagwarden.devices.schemas import APP_PATTERN
from tagwarden.inputs import NO_NUL, STRICT_INPUT, Id, Key, Text, keys

# Keys Compose knows that give a container the host's powers. They are refused by name, with
# the reason, rather than as merely unknown: whoever sends one should learn it is a policy.
REFUSED_KEYS = {
    "privileged": "privileged mode is not allowed (it gives the container the whole host)",
    "pid": "host PID namespace is not allowed (pid: host lets the container see and signal "
    "every process on the device)",
    "ipc": "host IPC namespace is not allowed (ipc: host shares the host's shared memory)",
    "cap_add": "added capabilities are not allowed (cap_add widens what root in the container "
    "may do to the host)",
    "devices": "host devices are not allowed (devices maps the device's hardware into the "
    "container)",
    "security_opt": "security options are not allowed (they can switch off seccomp/AppArmor)",
    "userns_mode": "userns_mode is not allowed (host user namespace)",
    "uts": "uts is not allowed (host UTS namespace)",
    "cgroup_parent": "cgroup_parent is not allowed",
}
AGENT_LABEL_PREFIX = "io.tagwarden."
_ENV_KEY = re.compile(r"[^=\x00]+")
_PORT = re.compile(
    r"(?:(?P<ip>[0-9.]+):)?(?P<host>[0-9]{1,5}):(?P<container>[0-9]{1,5})(?:/(?P<proto>tcp|udp))?"
)
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
HEALTH_TEST_KINDS = ("CMD", "CMD-SHELL", "NONE")

# The same grammars as JSON Schema patterns, so that the document allows what the validators
# below take. No lookarounds: generators and every regex engine read them.
_PORT_NUMBER = (
    r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
PORT_PATTERN = rf"^(?:{_OCTET}(?:\.{_OCTET}){{3}}:)?{_PORT_NUMBER}:{_PORT_NUMBER}(?:/(?:tcp|udp))?$"
# A path segment that is neither "." nor "..": starts with a character other than a dot, or is
# a dot followed by one, or two dots followed by more.
_SEGMENT = r"(?:[^/:.\x00][^/:\x00]*|\.[^/:.\x00][^/:\x00]*|\.\.[^/:\x00]+)"
_CLEAN_ABSOLUTE = rf"(?:/|(?:/{_SEGMENT})+)"
VOLUME_PATTERN = (
    rf"^(?:{_CLEAN_ABSOLUTE}|[A-Za-z0-9][A-Za-z0-9_.-]*):{_CLEAN_ABSOLUTE}(?::(?:ro|rw))?$"
)
# A healthcheck's test, as Docker reads it: ["NONE"], or CMD / CMD-SHELL and what to run.
_HEALTH_TEST_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "prefixItems": [{"const": "NONE"}], "minItems": 1, "maxItems": 1},
        {
            "type": "array",
            "prefixItems": [{"enum": ["CMD", "CMD-SHELL"]}],
            "items": {"type": "string", "pattern": NO_NUL},
            "minItems": 2,
            "maxItems": 100,
        },
    ]
}
# Documented only: the validators below check the same grammar and say what is wrong with it.
Port = Annotated[str, Field(json_schema_extra={"pattern": PORT_PATTERN})]
Volume = Annotated[str, Field(json_schema_extra={"pattern": VOLUME_PATTERN})]


class Healthcheck(BaseModel):
    model_config = STRICT_INPUT

    test: list[Text] = Field(
        min_length=1,
        max_length=100,
        description='["CMD", arg, …], ["CMD-SHELL", command] or ["NONE"], as Docker\'s HEALTHCHECK',
        json_schema_extra=_HEALTH_TEST_SCHEMA,
    )
    interval_seconds: float | None = Field(default=None, gt=0, le=86400)
    timeout_seconds: float | None = Field(default=None, gt=0, le=86400)
    retries: int | None = Field(default=None, ge=1, le=100)

    @field_validator("test")
    @classmethod
    def _test(cls, value: list[str]) -> list[str]:
        if value[0] not in HEALTH_TEST_KINDS:
            raise ValueError(f"test must start with one of {', '.join(HEALTH_TEST_KINDS)}")
        if value[0] == "NONE" and len(value) > 1:
            raise ValueError('["NONE"] takes no arguments (it turns the image\'s check off)')
        if value[0] != "NONE" and len(value) < 2:
            raise ValueError(f"{value[0]} needs a command after it")
        return value


def _port(spec: str) -> str:
    match = _PORT.fullmatch(spec)
    if match is None:
        raise ValueError(f"port {spec!r} must be [ip:]host:container[/tcp|/udp]")
    if match["ip"] is not None:
        try:
            ipaddress.IPv4Address(match["ip"])
        except ValueError:
            raise ValueError(f"port {spec!r}: {match['ip']!r} is not an IPv4 address") from None
    for part in ("host", "container"):
        if not 1 <= int(match[part]) <= 65535:
            raise ValueError(f"port {spec!r}: {match[part]} is not a port (1-65535)")
    return spec


def is_clean_absolute(path: str) -> bool:
    """An absolute path that means what it says: no ``..`` or ``.``, no doubled or trailing
    slash, no NUL or colon (so a check on the string is a check on the path that is mounted)."""
    if not path.startswith("/") or "\x00" in path or ":" in path or "//" in path:
        return False
    if ".." in path.split("/"):
        return False
    return path == "/" or posixpath.normpath(path) == path


def split_volume(spec: str) -> tuple[str, str, str | None]:
    """``source:target[:ro|rw]`` → its parts; refused when it is not that shape."""
    parts = spec.split(":")
    mode = None
    if len(parts) == 3:
        mode = parts.pop()
        if mode not in ("ro", "rw"):
            raise ValueError(f"volume {spec!r}: the mode is ro or rw, not {mode!r}")
    if len(parts) != 2:
        raise ValueError(f"volume {spec!r} must be name_or_path:path[:ro|rw]")
    source, target = parts
    if not is_clean_absolute(target):
        raise ValueError(
            f"volume {spec!r}: the container path must be absolute, without '..' or '.'"
        )
    if source.startswith("/"):
        if not is_clean_absolute(source):
            raise ValueError(
                f"volume {spec!r}: the host path must be normalised (no '..', '.' or '//')"
            )
    elif not _VOLUME_NAME.fullmatch(source):
        raise ValueError(
            f"volume {spec!r}: {source!r} is neither an absolute host path nor a volume name "
            "(letters, digits, _ . -; relative paths are not allowed)"
        )
    return source, target, mode


class AppConfig(BaseModel):
    """The container configuration; a key left out is the image's or the engine's default."""

    model_config = STRICT_INPUT

    command: list[Text] | None = Field(
        default=None,
        max_length=200,
        description="exec form; a string is split shell-like and stored as the list",
    )
    env: dict[Key, Text] | None = Field(
        default=None, max_length=500, json_schema_extra=keys(pattern=r"^[^=\x00]+$")
    )
    ports: list[Port] | None = Field(default=None, max_length=100)
    volumes: list[Volume] | None = Field(
        default=None,
        max_length=100,
        description="name_or_path:path[:ro|rw]; each container path once; a host path only "
        "inside the server's TAGWARDEN_APP_BIND_ROOTS",
    )
    restart: Literal["no", "always", "unless-stopped", "on-failure"] | None = None
    network_mode: Literal["none", "host", "bridge"] | None = None
    labels: dict[Key, Text] | None = Field(
        default=None,
        max_length=100,
        json_schema_extra=keys(
            minLength=1, maxLength=255, **{"not": {"pattern": r"^io\.tagwarden\."}}
        ),
    )
    healthcheck: Healthcheck | None = None

    @model_validator(mode="before")
    @classmethod
    def _refused_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refused = [REFUSED_KEYS[k] for k in data if k in REFUSED_KEYS]
            if refused:
                raise ValueError("; ".join(refused))
            if isinstance(data.get("command"), str):
                try:
                    data = data | {"command": shlex.split(data["command"])}
                except ValueError as exc:
                    raise ValueError(f"command: {exc}") from None
        return data

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if not _ENV_KEY.fullmatch(key):
                raise ValueError(f"env name {key!r} must be non-empty, without '=' or NUL")
        return value

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_port(p) for p in value]

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[str] | None) -> list[str] | None:
        targets: set[str] = set()
        for spec in value or []:
            _, target, _ = split_volume(spec)
            if target in targets:
                raise ValueError(f"volume {spec!r}: {target} is mounted twice")
            targets.add(target)
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if key.startswith(AGENT_LABEL_PREFIX):
                # The agent finds its containers by these labels: an app must not forge them.
                raise ValueError(f"label {key!r}: {AGENT_LABEL_PREFIX}* labels are the agent's")
            if not key or len(key) > 255:
                raise ValueError(f"label {key!r}: keys are 1-255 characters")
        return value

    def stored(self) -> dict[str, Any]:
        """The form kept in the database and sent to devices: only the keys that were set."""
        return self.model_dump(exclude_none=True)


class AppPut(BaseModel):
    model_config = STRICT_INPUT

    image_id: Id
    config: AppConfig = Field(default_factory=AppConfig)


class AppOut(BaseModel):
    name: str
    image_id: int
    config: dict[str, Any]
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    @classmethod
    def of(cls, app: App) -> AppOut:
        return cls(
            name=app.name,
            image_id=app.image_id,
            config=app.config,
            created_at=app.created_at,
            created_by=app.created_by,
            updated_at=app.updated_at,
            updated_by=app.updated_by,
        )


NAME_PATTERN = APP_PATTERN
