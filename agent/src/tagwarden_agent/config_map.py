"""An app's ``config`` (Compose's vocabulary, contracts/device-state.schema.json) → the keyword
arguments of the Docker SDK's ``containers.create``. Pure: no engine, so it is unit tested."""

from __future__ import annotations

from typing import Any

KNOWN_KEYS = frozenset(
    {"command", "env", "ports", "volumes", "restart", "network_mode", "labels", "healthcheck"}
)
RESTART_POLICIES = frozenset({"no", "always", "unless-stopped", "on-failure"})
NETWORK_MODES = frozenset({"none", "host", "bridge"})
AGENT_LABEL_PREFIX = "io.tagwarden."
NANOSECONDS = 1_000_000_000


class ConfigError(ValueError):
    """A config the agent does not understand: it refuses to run it rather than guess."""


def _seconds(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"healthcheck {what} must be a number of seconds above 0")
    return int(value * NANOSECONDS)


def _ports(items: list[Any]) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for item in items:
        spec, _, proto = str(item).partition("/")
        proto = proto or "tcp"
        parts = spec.split(":")
        if proto not in ("tcp", "udp") or len(parts) not in (2, 3):
            raise ConfigError(f"port {item!r} is not [ip:]host:container[/tcp|/udp]")
        try:
            host_port, container_port = int(parts[-2]), int(parts[-1])
        except ValueError as exc:
            raise ConfigError(f"port {item!r}: ports are numbers") from exc
        binding: Any = (parts[0], host_port) if len(parts) == 3 else host_port
        key = f"{container_port}/{proto}"
        existing = ports.get(key)
        ports[key] = binding if existing is None else [*_as_list(existing), binding]
    return ports


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _volumes(items: list[Any]) -> dict[str, dict[str, str]]:
    volumes: dict[str, dict[str, str]] = {}
    for item in items:
        parts = str(item).split(":")
        mode = "rw"
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            mode = parts.pop()
        if len(parts) != 2 or not parts[0] or not parts[1].startswith("/"):
            raise ConfigError(f"volume {item!r} is not source:/target[:ro|:rw]")
        volumes[parts[0]] = {"bind": parts[1], "mode": mode}
    return volumes


def _healthcheck(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not value.get("test"):
        raise ConfigError("healthcheck needs a test")
    unknown = set(value) - {"test", "interval_seconds", "timeout_seconds", "retries"}
    if unknown:
        raise ConfigError(f"healthcheck: unknown keys {sorted(unknown)}")
    test = value["test"]
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise ConfigError("healthcheck test must be a list of strings")
    # The Engine API takes durations in nanoseconds.
    check: dict[str, Any] = {"test": test}
    if "interval_seconds" in value:
        check["interval"] = _seconds(value["interval_seconds"], "interval_seconds")
    if "timeout_seconds" in value:
        check["timeout"] = _seconds(value["timeout_seconds"], "timeout_seconds")
    if "retries" in value:
        retries = value["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ConfigError("healthcheck retries must be 1 or more")
        check["retries"] = retries
    return check


def container_options(config: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """``containers.create`` keyword arguments for ``config``, with the agent's own ``labels``
    added (and refused in the config: they are how the agent finds its containers)."""
    unknown = set(config) - KNOWN_KEYS
    if unknown:
        raise ConfigError(f"unknown config keys {sorted(unknown)}: refusing to guess")
    options: dict[str, Any] = {}
    if "command" in config:
        command = config["command"]
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise ConfigError("command must be a list of strings (exec form)")
        options["command"] = command
    if "env" in config:
        env = config["env"]
        if not isinstance(env, dict):
            raise ConfigError("env must be a map")
        options["environment"] = {str(k): str(v) for k, v in env.items()}
    if config.get("ports"):
        options["ports"] = _ports(list(config["ports"]))
    if config.get("volumes"):
        options["volumes"] = _volumes(list(config["volumes"]))
    if "restart" in config:
        restart = config["restart"]
        if restart not in RESTART_POLICIES:
            raise ConfigError(f"restart {restart!r} is not one of {sorted(RESTART_POLICIES)}")
        options["restart_policy"] = {"Name": "" if restart == "no" else restart}
    if "network_mode" in config:
        mode = config["network_mode"]
        if mode not in NETWORK_MODES:
            raise ConfigError(f"network_mode {mode!r} is not one of {sorted(NETWORK_MODES)}")
        options["network_mode"] = mode
    own = dict(config.get("labels") or {})
    if any(str(k).startswith(AGENT_LABEL_PREFIX) for k in own):
        raise ConfigError("labels io.tagwarden.* are the agent's own")
    options["labels"] = {str(k): str(v) for k, v in own.items()} | labels
    if "healthcheck" in config:
        options["healthcheck"] = _healthcheck(config["healthcheck"])
    return options
