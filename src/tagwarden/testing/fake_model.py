"""The fake registry's one in-memory model: repositories → tags → index, manifests and blobs.

Every manifest and blob is real JSON (or bytes) stored under the sha256 of its exact bytes, so
the Hub API view and the OCI view of a tag agree on every digest, as they do on Docker Hub.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tagwarden.clock import Clock
from tagwarden.registry.manifests import (
    CREATED_ANNOTATION,
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
)
from tagwarden.testing.fake_records import (
    DEFAULT_PLATFORMS,
    Artifact,
    FakeRepository,
    MediaTypes,
    PlatformImage,
    PlatformSpec,
    TagRecord,
    rfc3339,
    sha256,
    version_tag,
)

_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_IN_TOTO = "application/vnd.in-toto+json"


def _dumps(document: dict[str, Any]) -> bytes:
    # The bytes are what gets hashed, so they are fixed once here. Compact, because indenting
    # drops json to its pure-Python encoder and seeding thousands of tags gets slow.
    return json.dumps(document, separators=(",", ":")).encode()


class RegistryModel:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.repositories: dict[str, FakeRepository] = {}
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # digest → (media type, bytes)
        # subject digest → descriptors of the manifests naming it as their ``subject``
        self.referrers: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(765_505_602)
        self._salt = itertools.count(1)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def repository(self, name: str) -> FakeRepository:
        return self.repositories[name.strip("/")]

    # -- helpers for tests -------------------------------------------------------------------

    def add_repository(
        self,
        name: str,
        tags: int = 0,
        *,
        platforms: Sequence[str] = DEFAULT_PLATFORMS,
        official: bool | None = None,
        private: bool = False,
        media_types: MediaTypes = "oci",
        attestations: bool | None = None,
        newest: datetime | None = None,
        spacing: timedelta = timedelta(hours=1),
        tag_names: Callable[[int], str] = version_tag,
        with_latest: bool = False,
        hub_digests: bool = True,
    ) -> FakeRepository:
        """A repository with ``tags`` tags, ``spacing`` apart, the newest just before ``newest``
        (default: now). Official (``library/…``) images get BuildKit attestations.
        ``hub_digests=False``: the Hub API lists these tags without a top-level digest."""
        name = name.strip("/")
        is_official = name.startswith("library/") if official is None else official
        repo = FakeRepository(
            name=name,
            official=is_official,
            private=private,
            media_types=media_types,
            attestations=(is_official if attestations is None else attestations)
            and media_types == "oci",
            platforms=tuple(PlatformSpec.parse(p) for p in platforms),
            hub_id=next(self._ids),
        )
        self.repositories[name] = repo
        end = newest or self.now()
        for i in range(tags):
            # Microseconds differ per tag so dates have varied fractions, and all are strictly
            # before ``end``: a tag pushed right after seeding is the newest.
            age = tags - 1 - i
            when = end - spacing * age - timedelta(microseconds=1 + age % 997)
            self.push_tag(name, tag_names(i), at=when, hub_digest=hub_digests)
        if with_latest and tags:
            self.alias_tag(name, "latest", tag_names(tags - 1))
        return repo

    def push_tag(
        self,
        repository: str,
        tag: str,
        *,
        platforms: Sequence[str] | None = None,
        at: datetime | None = None,
        created: datetime | None = None,
        hub_digest: bool = True,
    ) -> TagRecord:
        """Push fresh content under ``tag`` (new or existing): a new digest for every platform.

        ``at`` defaults to the clock's now; two pushes at the same instant sort by name, so
        advance a fake clock between them when their order matters. ``hub_digest=False``: the
        Hub API will list the tag without its top-level digest (see TagRecord)."""
        repo = self.repository(repository)
        specs = tuple(PlatformSpec.parse(p) for p in platforms) if platforms else repo.platforms
        when = at or self.now()
        built = created or when - timedelta(minutes=5)  # built a little before it was pushed
        images = tuple(self._image(repo, spec, built, tag) for spec in specs)
        record = self._store(repo, tag, self._artifact(repo, images, built), when)
        record.hub_digest = hub_digest
        return record

    def repush_tag(
        self,
        repository: str,
        tag: str,
        *,
        only_platform: str | None = None,
        at: datetime | None = None,
    ) -> TagRecord:
        """Same tag, new digest; with ``only_platform`` just that platform's image changes."""
        repo = self.repository(repository)
        old = repo.tags[tag]
        when = at or self.now()
        built = when - timedelta(minutes=5)
        target = PlatformSpec.parse(only_platform).key if only_platform else None
        images = tuple(
            self._image(repo, image.spec, built, tag)
            if target is None or image.spec.key == target
            else image
            for image in old.artifact.images
        )
        if images == old.artifact.images:
            raise ValueError(f"{repository}:{tag} has no platform {only_platform}")
        return self._store(repo, tag, self._artifact(repo, images, built), when)

    def alias_tag(
        self, repository: str, tag: str, target: str, *, at: datetime | None = None
    ) -> TagRecord:
        """Point ``tag`` at what ``target`` points at (``latest`` → ``7.2.5``)."""
        repo = self.repository(repository)
        return self._store(repo, tag, repo.tags[target].artifact, at or self.now())

    def remove_tag(self, repository: str, tag: str) -> None:
        del self.repository(repository).tags[tag]

    def put_blob(self, content: bytes) -> str:
        """Upload a blob (a signature payload, say); its digest."""
        return self._put_blob(content)[0]

    def push_manifest(
        self,
        repository: str,
        document: dict[str, Any],
        *,
        tag: str | None = None,
    ) -> str:
        """Push any manifest (a cosign signature, an attestation) as a registry takes it: a
        manifest with a ``subject`` becomes one of that digest's referrers (OCI 1.1), and a
        ``tag`` points at it. Its digest."""
        repo = self.repository(repository)
        media_type = str(document.get("mediaType", OCI_MANIFEST))
        digest, size = self._put_manifest(media_type, document)
        subject = document.get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
            config = document.get("config")
            descriptor: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
            kind = document.get("artifactType") or (
                config.get("mediaType") if isinstance(config, dict) else None
            )
            if kind:
                descriptor["artifactType"] = kind
            if document.get("annotations"):
                descriptor["annotations"] = document["annotations"]
            self.referrers.setdefault(subject["digest"], []).append(descriptor)
        if tag is not None:
            artifact = Artifact(digest, media_type, (), self.now())
            self._store(repo, tag, artifact, self.now())
        return digest

    def delete_manifest(self, digest: str) -> None:
        """Delete a manifest by digest (and the tags and referrer entries naming it)."""
        self.manifests.pop(digest, None)
        for repo in self.repositories.values():
            for name in [n for n, t in repo.tags.items() if t.artifact.digest == digest]:
                del repo.tags[name]
        for entries in self.referrers.values():
            entries[:] = [e for e in entries if e["digest"] != digest]

    # -- building content --------------------------------------------------------------------

    def _store(
        self, repo: FakeRepository, tag: str, artifact: Artifact, when: datetime
    ) -> TagRecord:
        record = TagRecord(tag, artifact, when, next(self._ids))
        repo.tags[tag] = record
        return record

    def _put_blob(self, content: bytes) -> tuple[str, int]:
        digest = sha256(content)
        self.blobs[digest] = content
        return digest, len(content)

    def _put_manifest(self, media_type: str, document: dict[str, Any]) -> tuple[str, int]:
        content = _dumps(document)
        digest = sha256(content)
        self.manifests[digest] = (media_type, content)
        return digest, len(content)

    def _image(
        self, repo: FakeRepository, spec: PlatformSpec, created: datetime, tag: str
    ) -> PlatformImage:
        oci = repo.media_types == "oci"
        salt = next(self._salt)
        layer_digest, layer_size = self._put_blob(f"{repo.name} {tag} {spec} #{salt}\n".encode())
        stamp = rfc3339(created)
        config: dict[str, Any] = {"architecture": spec.architecture, "os": spec.os}
        if spec.variant:
            config["variant"] = spec.variant
        config |= {
            "created": stamp,
            "config": {"Labels": {CREATED_ANNOTATION: stamp}},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created": stamp, "created_by": f"fake-registry build {tag}"}],
        }
        config_digest, config_size = self._put_blob(_dumps(config))
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        digest, manifest_size = self._put_manifest(
            media_type,
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "config": {
                    "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                    "digest": config_digest,
                    "size": config_size,
                },
                "layers": [
                    {
                        "mediaType": _OCI_LAYER if oci else _DOCKER_LAYER,
                        "digest": layer_digest,
                        "size": layer_size,
                    }
                ],
            },
        )
        image = PlatformImage(spec, digest, manifest_size, config_size + layer_size)
        if not repo.attestations:
            return image
        att_digest, att_size = self._attestation(digest)
        return PlatformImage(
            spec,
            digest,
            manifest_size,
            image.size,
            attestation_digest=att_digest,
            attestation_size=att_size,
        )

    def _attestation(self, subject: str) -> tuple[str, int]:
        """A BuildKit provenance manifest: platform unknown/unknown, an in-toto layer."""
        statement = {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"digest": {"sha256": subject.removeprefix("sha256:")}}],
        }
        layer_digest, layer_size = self._put_blob(_dumps(statement))
        config_digest, config_size = self._put_blob(
            _dumps({"architecture": "unknown", "os": "unknown", "config": {}, "rootfs": {}})
        )
        return self._put_manifest(
            OCI_MANIFEST,
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
                "layers": [{"mediaType": _IN_TOTO, "digest": layer_digest, "size": layer_size}],
            },
        )

    def _artifact(
        self, repo: FakeRepository, images: tuple[PlatformImage, ...], created: datetime
    ) -> Artifact:
        if len(images) == 1 and not repo.attestations:
            only = images[0]
            media_type = self.manifests[only.digest][0]
            return Artifact(only.digest, media_type, images, created)
        oci = repo.media_types == "oci"
        manifest_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        entries: list[dict[str, Any]] = []
        for image in images:
            platform = {"architecture": image.spec.architecture, "os": image.spec.os}
            if image.spec.variant:
                platform["variant"] = image.spec.variant
            entries.append(
                {
                    "mediaType": manifest_type,
                    "size": image.manifest_size,
                    "digest": image.digest,
                    "platform": platform,
                }
            )
        for image in images:
            if image.attestation_digest:
                entries.append(
                    {
                        "mediaType": OCI_MANIFEST,
                        "size": image.attestation_size,
                        "digest": image.attestation_digest,
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {
                            "vnd.docker.reference.type": "attestation-manifest",
                            "vnd.docker.reference.digest": image.digest,
                        },
                    }
                )
        media_type = OCI_INDEX if oci else DOCKER_MANIFEST_LIST
        digest, _ = self._put_manifest(
            media_type, {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        )
        return Artifact(digest, media_type, images, created)
