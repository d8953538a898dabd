"""The container engine, through the Docker Engine API (Docker, or Podman's compatible socket).

Containers are the agent's when they carry ``io.tagwarden.device`` = this device: a restarted
agent adopts what it started, and several agents may share one engine. An app's container is
named ``tw-<device>-<app>``; the previous one, kept stopped for a rollback, ``…-previous``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.auth
import docker.errors
from docker.models.containers import Container

from tagwarden_agent.crash import crash_point

log = logging.getLogger("tagwarden_agent")

DEVICE_LABEL = "io.tagwarden.device"
APP_LABEL = "io.tagwarden.app"
DIGEST_LABEL = "io.tagwarden.digest"
IMAGE_LABEL = "io.tagwarden.image"
PREVIOUS_SUFFIX = "-previous"
DEFAULT_HEALTH_INTERVAL = 30.0  # seconds: the engines' default when a healthcheck names none
CHECKED_MEMORY = 3600.0  # seconds a container's last triggered healthcheck is remembered


class EngineFailure(Exception):
    """An update step that failed, with the report's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message[:2000]


def failure_reason(error: BaseException, default: str) -> str:
    return "disk_full" if "no space left on device" in str(error).lower() else default


def split_reference(reference: str) -> tuple[str, str]:
    """``name[:tag]@digest`` → (name, digest)."""
    name, sep, digest = reference.rpartition("@")
    if not sep or not digest:
        raise EngineFailure("other", f"{reference!r} is not pinned by digest")
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    return name, digest


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in text)


def healthcheck_interval(container: Container) -> float:
    """Seconds between the container's healthchecks (its config holds nanoseconds)."""
    check = (container.attrs.get("Config") or {}).get("Healthcheck") or {}
    interval = int(check.get("Interval") or 0)
    return interval / 1e9 if interval > 0 else DEFAULT_HEALTH_INTERVAL


@dataclass(frozen=True)
class Health:
    status: str  # running, exited, restarting, created, …
    health: str | None  # healthy, unhealthy, starting, or None: no healthcheck
    restarts: int


class Engine:
    def __init__(
        self, device: str, *, docker_config: Path | None = None, base_url: str | None = None
    ) -> None:
        self.device = device
        self.client = (
            docker.DockerClient(base_url=base_url, version="auto")
            if base_url
            else docker.from_env(version="auto")
        )
        self.docker_config = docker_config
        self._podman: bool | None = None
        self._checked: dict[str, float] = {}  # container id → when its healthcheck last ran

    def close(self) -> None:
        self.client.close()

    # -- naming and finding -------------------------------------------------------------------

    def container_name(self, app: str) -> str:
        return f"tw-{safe_name(self.device)}-{safe_name(app)}"

    def labels(self, app: str, image: str, digest: str) -> dict[str, str]:
        return {
            DEVICE_LABEL: self.device,
            APP_LABEL: app,
            DIGEST_LABEL: digest,
            IMAGE_LABEL: image,
        }

    def containers(self) -> dict[str, list[Container]]:
        """This device's containers, by app (one query: the at-rest cost of a loop)."""
        found: dict[str, list[Container]] = {}
        for container in self.client.containers.list(
            all=True, filters={"label": f"{DEVICE_LABEL}={self.device}"}
        ):
            labels = container.labels or {}
            if labels.get(DEVICE_LABEL) == self.device and APP_LABEL in labels:
                found.setdefault(labels[APP_LABEL], []).append(container)
        return found

    # -- images ---------------------------------------------------------------------------------

    def _auth(self, name: str) -> dict[str, Any] | None:
        """Credentials for the image's registry from the device's docker config.json (never
        from the server)."""
        registry, _ = docker.auth.resolve_repository_name(name)
        config = docker.auth.load_config(str(self.docker_config) if self.docker_config else None)
        found = config.resolve_authconfig(registry)
        if not found:
            return None
        return {k.lower(): v for k, v in found.items() if k.lower() in ("username", "password")}

    def has_image(self, name: str, digest: str) -> bool:
        try:
            image = self.client.images.get(f"{name}@{digest}")
        except docker.errors.ImageNotFound:
            return False
        return f"{name}@{digest}" in (image.attrs.get("RepoDigests") or [])

    def pull(self, name: str, digest: str) -> None:
        """Pull by digest and check that the image's repo digest is the target's."""
        try:
            for event in self.client.api.pull(
                name, tag=digest, auth_config=self._auth(name), stream=True, decode=True
            ):
                if isinstance(event, dict) and event.get("error"):
                    raise EngineFailure(
                        failure_reason(Exception(event["error"]), "pull_failed"),
                        f"pull of {name}@{digest} failed: {event['error']}",
                    )
                crash_point("pulling")
        except docker.errors.APIError as exc:
            raise EngineFailure(
                failure_reason(exc, "pull_failed"), f"pull of {name}@{digest} failed: {exc}"
            ) from exc
        if not self.has_image(name, digest):
            raise EngineFailure(
                "pull_failed", f"pulled {name}, but its repo digest is not {digest}"
            )

    def remove_image(self, name: str, digest: str) -> None:
        # In use (by a container, or another agent on this engine) is no reason to fail.
        with contextlib.suppress(docker.errors.APIError):
            self.client.images.remove(f"{name}@{digest}", noprune=False)

    # -- containers -----------------------------------------------------------------------------

    def create(self, name: str, image: str, options: dict[str, Any]) -> Container:
        try:
            container = self.client.containers.create(image, name=name, detach=True, **options)
            container.start()
        except docker.errors.APIError as exc:
            raise EngineFailure(failure_reason(exc, "other"), f"could not start: {exc}") from exc
        return container

    def health(self, container: Container) -> Health:
        container.reload()
        state = container.attrs.get("State") or {}
        health = state.get("Health") or state.get("Healthcheck")
        return Health(
            status=str(state.get("Status") or container.status),
            health=str(health["Status"]) if health and health.get("Status") else None,
            restarts=int(container.attrs.get("RestartCount") or 0),
        )

    def has_healthcheck(self, container: Container) -> bool:
        check = (container.attrs.get("Config") or {}).get("Healthcheck") or {}
        test = check.get("Test") or []
        return bool(test) and test[0] != "NONE"

    def is_podman(self) -> bool:
        """Podman's compatible API names itself in /version; it runs no healthchecks without
        systemd, so the agent triggers them (the capability check for :meth:`run_healthcheck`)."""
        if self._podman is None:
            try:
                components = self.client.version().get("Components") or []
            except docker.errors.APIError:
                components = []
            self._podman = any("podman" in str(c.get("Name", "")).lower() for c in components)
        return self._podman

    def run_healthcheck(self, container: Container) -> None:
        """Podman only: run the container's healthcheck through the libpod API, at most once per
        its interval, as the engine's own timer would. Called while an update is watched and on
        every step at rest, so the health reported is current, not the last one before rest."""
        if not self.is_podman() or not self.has_healthcheck(container):
            return
        now, key = time.monotonic(), str(container.id)
        last = self._checked.get(key)
        if last is not None and now - last < healthcheck_interval(container):
            return
        # Containers replaced by updates drop out; what is left is a handful of entries.
        self._checked = {k: t for k, t in self._checked.items() if now - t < CHECKED_MEMORY}
        self._checked[key] = now
        url = self.client.api.base_url + f"/v4.0.0/libpod/containers/{container.id}/healthcheck"
        with contextlib.suppress(Exception):  # the caller reads the outcome from the container
            self.client.api.get(url, timeout=30)

    def watch(self, container: Container, *, settle: float, timeout: float) -> None:
        """Until healthy (a healthcheck) or running without a restart for ``settle`` seconds
        (none); raises :class:`EngineFailure` with ``unhealthy``, ``crashloop`` or ``timeout``."""
        container.reload()
        checked = self.has_healthcheck(container)
        started = time.monotonic()
        deadline = started + (timeout if checked else settle + 5)
        while True:
            now = self.health(container)
            if now.restarts > 0 or now.status in ("exited", "dead", "restarting"):
                raise EngineFailure(
                    "crashloop",
                    f"the container {now.status} (restarts: {now.restarts}) "
                    f"within {time.monotonic() - started:.1f} s of starting",
                )
            if checked:
                if now.health == "healthy":
                    # A few more looks: an image that passes once and then exits is a crash loop.
                    if time.monotonic() - started >= min(settle, 1.0):
                        return
                elif now.health == "unhealthy":
                    raise EngineFailure("unhealthy", "the container's healthcheck failed")
            elif now.status == "running" and time.monotonic() - started >= settle:
                return
            if time.monotonic() > deadline:
                raise EngineFailure(
                    "timeout" if checked else "crashloop",
                    f"not healthy within {timeout:.0f} s (health: {now.health or 'none'})",
                )
            if checked:
                self.run_healthcheck(container)
            time.sleep(0.1)
