"""The loop: poll the target state, reconcile every app against the engine, report.

An update undoes itself: pull (``downloading``), stop and rename the old container (kept),
start the new (``installing``), watch it; ``running`` + ``healthy`` only once it is. On a
failure the previous container is restored and ``failed`` is reported with the reason. A switch
is announced in the state file before it starts, so a restart after ``kill -9`` at any point
knows to undo the half-done switch and try again: one container per app, no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import httpx
import requests.exceptions
from docker.models.containers import Container

from tagwarden_agent import state as state_file
from tagwarden_agent.backoff import next_delay
from tagwarden_agent.config_map import ConfigError, container_options
from tagwarden_agent.crash import crash_point
from tagwarden_agent.engine import (
    DIGEST_LABEL,
    IMAGE_LABEL,
    PREVIOUS_SUFFIX,
    Engine,
    EngineFailure,
    failure_reason,
    split_reference,
)

log = logging.getLogger("tagwarden_agent")
LOCKED_MESSAGE = "update locked"
KEPT_IMAGES = 2  # per app: the running one and the previous container's


@dataclass
class Options:
    server: str
    device: str
    key: str
    state_dir: Path
    lock_file: Path
    settle_seconds: float = 10.0
    health_timeout: float = 120.0


class Agent:
    def __init__(self, options: Options, engine: Engine, *, rng: random.Random | None = None):
        self.options = options
        self.engine = engine
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.state = state_file.load(options.state_dir)
        self.http = httpx.Client(
            base_url=options.server.rstrip("/"),
            headers={"Authorization": f"Bearer {options.key}"},
            timeout=10,
        )
        self.poll_interval = 60.0
        self.failures = 0
        self._sent: dict[str, dict[str, Any]] = {}  # app → the last report the server took
        self._pending: dict[str, dict[str, Any]] = {}  # app → a report not delivered yet
        self._held = False  # an update waits for the lock file to go

    def close(self) -> None:
        self.http.close()
        self.engine.close()

    def save(self) -> None:
        state_file.save(self.options.state_dir, self.state)

    # -- the server ---------------------------------------------------------------------------

    @property
    def state_path(self) -> str:
        return f"/api/v1/device/{self.options.device}/state"

    def poll(self) -> bool:
        """One conditional poll; True when the server answered (200 or 304)."""
        headers = {"If-None-Match": self.state.etag} if self.state.etag else {}
        try:
            response = self.http.get(self.state_path, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("poll failed: %s", type(exc).__name__)
            return False
        if response.status_code not in (200, 304):
            log.warning("poll answered %s", response.status_code)
            return False
        interval = response.headers.get("x-poll-interval")
        if response.status_code == 200:
            body = response.json()
            self.state.target = body
            self.state.etag = response.headers.get("etag")
            interval = interval or body.get("poll_interval")
            self.save()
        if interval:
            with contextlib.suppress(ValueError):
                self.poll_interval = max(1.0, float(interval))
        return True

    def report(self, app: str, body: dict[str, Any]) -> None:
        if self._sent.get(app) == body:
            return
        self._pending[app] = body
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batch = dict(self._pending)
        try:
            response = self.http.patch(self.state_path, json={"apps": batch})
        except httpx.HTTPError as exc:
            log.warning("report failed: %s", type(exc).__name__)
            return
        if response.status_code == 200:
            for app, body in batch.items():
                self._sent[app] = body
                if self._pending.get(app) == body:
                    del self._pending[app]
        else:
            log.warning("report answered %s", response.status_code)

    # -- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.converge()
        while not stop.is_set():
            delay = self.step()
            self._wait(stop, delay)

    def _wait(self, stop: threading.Event, delay: float) -> None:
        """Sleep ``delay``, but wake early when the lock an update waits for is gone."""
        deadline = time.monotonic() + delay
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or (self._held and not self.options.lock_file.exists()):
                return
            stop.wait(min(left, 0.5 if self._held else left))

    def step(self) -> float:
        """Poll, reconcile, report; the delay until the next step."""
        answered = self.poll()
        self.failures = 0 if answered else self.failures + 1
        if self.state.target is not None:
            try:
                self.reconcile(self.state.target)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                # The engine is away (restarting? its socket gone: the SDK's requests error):
                # the containers are its to keep running; the loop goes on.
                log.warning("engine: %s", exc)
                self.failures += 1
        self.flush()
        return next_delay(self.poll_interval, self.failures, self.rng)

    # -- reconciling ---------------------------------------------------------------------------

    def converge(self) -> None:
        """After a start (or a crash): undo a half-done switch, drop strays, one container per
        app. The update is then retried by the loop like any other."""
        found = self.engine.containers()
        for app, containers in found.items():
            main_name = self.engine.container_name(app)
            memory = self.state.app(app)
            main = _named(containers, main_name)
            previous = _named(containers, main_name + PREVIOUS_SUFFIX)
            for stray in containers:
                if stray not in (main, previous):
                    log.info("removing stray container %s", stray.name)
                    _remove(stray)
            if memory.switching_to is not None:
                log.info("%s: a switch to %s was interrupted; undoing it", app, memory.switching_to)
                if (main is not None and previous is not None) or (
                    main is not None and _digest(main) == memory.switching_to
                ):
                    _remove(main)
                    main = None
                memory.switching_to = None
            if main is None and previous is not None:
                self._restore(previous, main_name)
            self.save()

    def reconcile(self, target: dict[str, Any]) -> None:
        apps: dict[str, Any] = target.get("apps") or {}
        found = self.engine.containers()
        self._held = False
        for app, spec in apps.items():
            self.reconcile_app(app, spec, found.get(app, []))
        for app, containers in found.items():
            if app not in apps:  # no target any more: the app is removed from the device
                log.info("%s: no longer in the target state; removing it", app)
                for container in containers:
                    _remove(container)
                self.state.apps.pop(app, None)
                self.save()
        if self.state.version != target.get("version") and not self._held:
            self.state.version = target.get("version")
            self.save()

    def reconcile_app(self, app: str, spec: dict[str, Any], containers: list[Container]) -> None:
        image, digest = str(spec["image"]), str(spec["digest"])
        memory = self.state.app(app)
        main_name = self.engine.container_name(app)
        main = _named(containers, main_name)
        if main is not None and main.status == "running":
            # An engine that runs no healthchecks of its own (Podman without systemd) reports
            # the health of the last check forever: run it, for the report below and for what
            # runs after a failed update (the restored container starts its checks afresh).
            self.engine.run_healthcheck(main)
        if main is not None and _digest(main) == digest:
            if main.status in ("created", "exited"):
                main.start()  # e.g. after a reboot with restart "no": the target must run
            memory.digest, memory.image = digest, image
            # Back on a good target: a digest that failed earlier may be asked for again later
            # (a new rollout of it), and must then be tried, not ignored.
            memory.failed_digest = None
            self.report(app, self._running_report(main))
            return
        if memory.failed_digest == digest:
            return  # reported failed; the server decides what comes next (a new target)
        if spec.get("prefetch") is True:
            self.prefetch(app, image, digest, main)
            return
        self.update(app, image, digest, spec.get("config") or {}, main, containers)

    def prefetch(self, app: str, image: str, digest: str, main: Container | None) -> None:
        """The switch waits for a maintenance window: download the target now, keep what runs.

        A failed download is neither reported nor remembered as a failure: nothing changed on
        the device, and the switch (once the window opens) pulls again and reports then.
        """
        try:
            name, _ = split_reference(image)
        except EngineFailure as exc:
            log.warning("%s: cannot pre-fetch %s: %s", app, image, exc.message)
            return
        memory = self.state.app(app)
        reference = f"{name}@{digest}"
        if not self.engine.has_image(name, digest):
            try:
                self.engine.pull(name, digest)
            except EngineFailure as exc:
                log.warning("%s: pre-fetch of %s failed (%s): %s", app, digest, exc.reason,
                            exc.message)  # fmt: skip
                self.engine.remove_image(name, digest)
                return
            log.info("%s: pre-fetched %s; switching in the next maintenance window", app, digest)
            if reference not in memory.pulled:  # this agent's to prune, as any pull of its own
                memory.pulled.append(reference)
                self.save()
        if main is not None and main.status == "running":
            self.report(app, self._running_report(main))  # what runs: still the old image

    def _running_report(self, container: Container) -> dict[str, Any]:
        now = self.engine.health(container)
        healthy = now.status == "running" and now.health in ("healthy", None)
        return {
            "image": container.labels.get(IMAGE_LABEL),
            "digest": container.labels.get(DIGEST_LABEL),
            "status": "running" if now.status == "running" else "failed",
            "health": "healthy" if healthy else ("unhealthy" if now.health else "unknown"),
            **({} if now.status == "running" else {"reason": "crashloop",
                                                   "message": f"container {now.status}"}),
        }  # fmt: skip

    def update(
        self,
        app: str,
        image: str,
        digest: str,
        config: dict[str, Any],
        main: Container | None,
        containers: list[Container],
    ) -> None:
        memory = self.state.app(app)
        main_name = self.engine.container_name(app)
        try:
            name, _ = split_reference(image)
            options = container_options(config, self.engine.labels(app, image, digest))
        except (ConfigError, EngineFailure) as exc:
            self._failed(app, digest, "other", str(exc), main)
            return
        reference = f"{name}@{digest}"
        if not self._pull(app, image, name, digest, main):
            return
        if self.options.lock_file.exists():
            self._held = True
            self.report(
                app,
                {"image": image, "digest": digest, "status": "downloading",
                 "message": LOCKED_MESSAGE},
            )  # fmt: skip
            return
        self.report(app, {"image": image, "digest": digest, "status": "installing"})
        # At most one previous container: the one about to be replaced takes the place.
        for container in containers:
            if container is not main:
                _remove(container)
        memory.switching_to = digest
        memory.previous_id = main.id if main is not None else None
        self.save()
        if main is not None:
            main.stop(timeout=10)
            main.rename(main_name + PREVIOUS_SUFFIX)
        crash_point("stopped")
        new: Container | None = None
        try:
            new = self.engine.create(main_name, reference, options)
            crash_point("started")
            self.engine.watch(
                new, settle=self.options.settle_seconds, timeout=self.options.health_timeout
            )
        except (EngineFailure, docker.errors.APIError) as exc:
            failure = (
                exc
                if isinstance(exc, EngineFailure)
                else EngineFailure(failure_reason(exc, "other"), str(exc))
            )
            log.warning("%s: %s failed (%s): %s", app, digest, failure.reason, failure.message)
            restored = self._switch_back(memory, main_name, new, name, digest)
            self._failed(app, digest, failure.reason, failure.message, restored)
            return
        crash_point("healthy")
        memory.digest, memory.image = digest, image
        memory.switching_to = None
        memory.failed_digest = None
        self.save()
        log.info("%s: running %s, healthy", app, digest)
        self.report(app, self._running_report(new))
        self.prune(app, memory)

    def _pull(self, app: str, image: str, name: str, digest: str, main: Container | None) -> bool:
        """Download the digest unless it is here; False (and reported) when that failed."""
        memory = self.state.app(app)
        reference = f"{name}@{digest}"
        if self.engine.has_image(name, digest):
            return True
        self.report(app, {"image": image, "digest": digest, "status": "downloading"})
        try:
            self.engine.pull(name, digest)
        except EngineFailure as exc:
            self.engine.remove_image(name, digest)
            self._failed(app, digest, exc.reason, exc.message, main)
            return False
        if reference not in memory.pulled:
            memory.pulled.append(reference)
            self.save()
        return True

    def _switch_back(
        self,
        memory: state_file.AppMemory,
        main_name: str,
        new: Container | None,
        name: str,
        digest: str,
    ) -> Container | None:
        """Undo a switch that failed: remove the new container (or what is left of it), start
        the previous one again and forget the failed digest; returns what runs now."""
        if new is not None:
            _remove(new)
        else:
            leftover = self._find(main_name)
            if leftover is not None:
                _remove(leftover)
        previous = self._find(main_name + PREVIOUS_SUFFIX)
        restored = self._restore(previous, main_name) if previous is not None else None
        memory.switching_to = None
        memory.previous_id = None
        self.save()
        self.engine.remove_image(name, digest)  # none of the failed digest is left
        reference = f"{name}@{digest}"
        if reference in memory.pulled:
            memory.pulled.remove(reference)
        return restored

    def _failed(
        self, app: str, digest: str, reason: str, message: str, running: Container | None
    ) -> None:
        memory = self.state.app(app)
        memory.failed_digest = digest
        self.save()
        body: dict[str, Any] = {
            "status": "failed",
            "health": "unknown",
            "reason": reason,
            "message": message[:2000],
        }
        if running is not None:  # what runs now: the restored previous container
            body["image"] = running.labels.get(IMAGE_LABEL)
            body["digest"] = running.labels.get(DIGEST_LABEL)
        self.report(app, body)

    def _find(self, name: str) -> Container | None:
        try:
            return self.engine.client.containers.get(name)
        except docker.errors.NotFound:
            return None

    def _restore(self, previous: Container, main_name: str) -> Container:
        log.info("restoring %s as %s", previous.name, main_name)
        previous.rename(main_name)
        previous.start()
        previous.reload()
        return previous

    def prune(self, app: str, memory: state_file.AppMemory) -> None:
        """Images this agent pulled for the app, beyond the last two."""
        while len(memory.pulled) > KEPT_IMAGES:
            reference = memory.pulled.pop(0)
            name, _, digest = reference.rpartition("@")
            self.engine.remove_image(name, digest)
        self.save()


def _named(containers: list[Container], name: str) -> Container | None:
    for container in containers:
        if container.name == name:
            return container
    return None


def _digest(container: Container) -> str | None:
    return (container.labels or {}).get(DIGEST_LABEL)


def _remove(container: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)
