"""A real OCI registry for tests: Debian's ``docker-registry`` (distribution) on loopback.

``real_registry`` (session-scoped fixture) starts ``/usr/bin/docker-registry serve`` with a
config of our own: filesystem storage in a temporary directory, HTTP on 127.0.0.1:<free port>,
htpasswd (bcrypt) auth. It yields a :class:`RealRegistry` with ``url``, ``host``, ``username``,
``password`` and ``push_multiarch``, which pushes through the registry's HTTP API.

Without the binary the fixture skips with the install command, unless
``TAGWARDEN_REQUIRE_REGISTRY=1`` (CI), where a missing registry is a failure.
Install: ``apt-get install -y docker-registry apache2-utils`` (htpasswd comes from apache2-utils).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from pydantic import SecretStr

from tagwarden.config import RegistryCredentials

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
INSTALL_COMMAND = "apt-get install -y docker-registry apache2-utils"
REQUIRE_ENV = "TAGWARDEN_REQUIRE_REGISTRY"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class PushedImage:
    repository: str
    tag: str
    digest: str  # the index
    platform_digests: dict[str, str]  # architecture → image manifest digest
    created: datetime
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # architecture → manifest


@dataclass
class RealRegistry:
    url: str
    host: str
    username: str
    password: str
    log_file: Path
    _http: httpx.Client = field(repr=False)

    def credentials(self) -> RegistryCredentials:
        """What TAGWARDEN_REGISTRIES holds for this host."""
        return RegistryCredentials(
            url=self.url, username=self.username, password=SecretStr(self.password)
        )

    def push_blob(self, repository: str, content: bytes) -> str:
        """POST an upload, then PUT it whole (a monolithic upload)."""
        digest = sha256(content)
        started = self._http.post(f"{self.url}/v2/{repository}/blobs/uploads/")
        _expect(started, 202)
        location = urljoin(f"{self.url}/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = self._http.put(
            f"{location}{separator}digest={digest}",
            content=content,
            headers={"Content-Type": "application/octet-stream"},
        )
        _expect(done, 201)
        return digest

    def push_manifest(self, repository: str, reference: str, media_type: str, body: bytes) -> str:
        answer = self._http.put(
            f"{self.url}/v2/{repository}/manifests/{reference}",
            content=body,
            headers={"Content-Type": media_type},
        )
        _expect(answer, 201)
        digest = sha256(body)
        assert answer.headers.get("Docker-Content-Digest", digest) == digest
        return digest

    def push_multiarch(
        self,
        repository: str,
        tag: str,
        created: datetime | None = None,
        architectures: tuple[str, ...] = ("amd64", "arm64"),
        shared_layers: tuple[bytes, ...] = (),
    ) -> PushedImage:
        """One image per architecture (config blob with ``created``, ``shared_layers`` then one
        layer of its own), then an OCI image index referencing them, under ``tag``.

        ``shared_layers`` are gzipped tars pushed as they are: tags that name the same ones
        share those layers by digest, as images built on one base do."""
        when = (created or datetime.now(UTC)).astimezone(UTC)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        platform_digests: dict[str, str] = {}
        manifests: dict[str, dict[str, Any]] = {}
        entries = []
        shared = [
            {"mediaType": OCI_LAYER, "digest": self.push_blob(repository, blob), "size": len(blob)}
            for blob in shared_layers
        ]
        for arch in architectures:
            layer_tar = _tar({"etc/tagwarden-test": f"{repository}:{tag} {arch} {stamp}\n"})
            layer = gzip.compress(layer_tar, mtime=0)
            layer_digest = self.push_blob(repository, layer)
            config = json.dumps(
                {
                    "architecture": arch,
                    "os": "linux",
                    **({"variant": "v8"} if arch == "arm64" else {}),
                    "created": stamp,
                    "config": {"Labels": {"org.opencontainers.image.version": tag}},
                    "rootfs": {
                        "type": "layers",
                        "diff_ids": [
                            *(sha256(gzip.decompress(blob)) for blob in shared_layers),
                            sha256(layer_tar),
                        ],
                    },
                    "history": [{"created": stamp, "created_by": "tagwarden test push"}],
                }
            ).encode()
            config_digest = self.push_blob(repository, config)
            body = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    *shared,
                    {"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)},
                ],
            }
            manifest = json.dumps(body).encode()
            digest = self.push_manifest(repository, sha256(manifest), OCI_MANIFEST, manifest)
            platform_digests[arch] = digest
            manifests[arch] = body
            platform = {"architecture": arch, "os": "linux"}
            if arch == "arm64":
                platform["variant"] = "v8"
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": len(manifest),
                    "platform": platform,
                }
            )
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        ).encode()
        index_digest = self.push_manifest(repository, tag, OCI_INDEX, index)
        return PushedImage(repository, tag, index_digest, platform_digests, when, manifests)


def layer_blob(files: dict[str, str]) -> bytes:
    """A gzipped tar layer of ``files`` (path → text), reproducible byte for byte."""
    return gzip.compress(_tar(files), mtime=0)


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise AssertionError(
            f"{response.request.method} {response.request.url}: expected {status}, got "
            f"{response.status_code} {response.text[:300]}"
        )


def _htpasswd_line(username: str, password: str) -> str:
    """A bcrypt entry, the only kind distribution accepts."""
    tool = shutil.which("htpasswd")
    if tool is None:
        raise FileNotFoundError("htpasswd (apache2-utils) is not installed")
    done = subprocess.run(
        [tool, "-Bbn", username, password], check=True, capture_output=True, text=True
    )
    return done.stdout.strip() + "\n"


def unavailable_reason() -> str | None:
    if not REGISTRY_BINARY.exists():
        return f"{REGISTRY_BINARY} not found; install it with: {INSTALL_COMMAND}"
    if shutil.which("htpasswd") is None:
        return f"htpasswd not found; install it with: {INSTALL_COMMAND}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def start_registry(
    workdir: Path, *, timeout: float = 20.0, notifications: dict[str, object] | None = None
) -> Iterator[RealRegistry]:
    """Write a config into ``workdir``, start the registry, wait for ``/v2/``, stop it after.

    ``notifications`` is the config's ``notifications`` section (webhook endpoints), if any.
    """
    username, password = "tagwarden", secrets.token_urlsafe(12)
    (workdir / "htpasswd").write_text(_htpasswd_line(username, password))
    port = _free_port()
    config = {  # JSON is YAML, so no YAML library is needed to write it
        "version": "0.1",
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "data")},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        "auth": {"htpasswd": {"realm": "tagwarden-test", "path": str(workdir / "htpasswd")}},
    }
    if notifications is not None:
        config["notifications"] = notifications
    config_path = workdir / "config.yml"
    config_path.write_text(json.dumps(config, indent=2))
    log_file = workdir / "registry.log"
    # REGISTRY_* variables override the config file; none from the caller may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(REGISTRY_BINARY), "serve", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(auth=(username, password), timeout=10)
    try:
        _wait_until_up(process, url, log_file, timeout)
        yield RealRegistry(url, f"127.0.0.1:{port}", username, password, log_file, http)
    finally:
        http.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited ({process.returncode}):\n{log.read_text()}")
        try:
            # 401 is "up": anonymous callers are challenged for Basic credentials.
            if httpx.get(f"{url}/v2/", timeout=1).status_code in (200, 401):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry not answering on {url}:\n{log.read_text()}")


def require_registry() -> None:
    """Skip (a developer's machine) or fail (CI, TAGWARDEN_REQUIRE_REGISTRY=1) without one."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRegistry]:
    require_registry()
    with start_registry(tmp_path_factory.mktemp("docker-registry")) as registry:
        yield registry
