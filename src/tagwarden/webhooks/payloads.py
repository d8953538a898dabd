"""Reading pushes out of registry webhook bodies (pure).

Only where to look is taken from a payload (registry host, repository, tag); what the tag is
(digest, platforms, date) is always asked of the registry by the check the push triggers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tagwarden.errors import InvalidInput
from tagwarden.references import DIGEST_RE

DOCKER_HUB = "docker.io"
GHCR = "ghcr.io"


@dataclass(frozen=True, slots=True)
class Push:
    host: str | None  # the registry host the push went to, where the payload says
    repository: str  # namespace/name, as the registry names it
    tag: str | None
    digest: str | None = None


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def dockerhub(body: Any) -> list[Push]:
    """Docker Hub's push payload: ``repository.repo_name`` and ``push_data.tag``."""
    body = _dict(body, "the body")
    repository = _dict(body.get("repository"), "repository")
    name = _str(repository.get("repo_name"))
    if name is None:
        raise InvalidInput("repository.repo_name is missing")
    if "/" not in name:  # official images are library/<name> in the Hub API
        name = f"library/{name}"
    push_data = body.get("push_data")
    tag = _str(push_data.get("tag")) if isinstance(push_data, dict) else None
    return [Push(DOCKER_HUB, name, tag)]


def distribution(body: Any) -> list[Push]:
    """docker-registry/distribution's envelope (``events[]``) or Harbor's (default or
    CloudEvents). Pulls, blob uploads and pushes by digest alone are not tag pushes."""
    body = _dict(body, "the body")
    if isinstance(body.get("events"), list):
        return _distribution_events(body["events"])
    if body.get("type") in ("PUSH_ARTIFACT", "harbor.artifact.pushed"):
        data = body.get("event_data") if body.get("type") == "PUSH_ARTIFACT" else body.get("data")
        return _harbor(_dict(data, "event_data"))
    if "type" in body:
        return []  # another Harbor event type (pull, delete, scan …): nothing to check
    raise InvalidInput("not a registry notification: expected events[] or a Harbor event")


def _distribution_events(events: list[Any]) -> list[Push]:
    pushes = []
    for event in events:
        if not isinstance(event, dict) or event.get("action") != "push":
            continue
        target = event.get("target")
        if not isinstance(target, dict):
            continue
        repository, tag = _str(target.get("repository")), _str(target.get("tag"))
        digest = _str(target.get("digest"))
        if repository is None or tag is None or is_digest_push(tag, digest):
            continue
        request = event.get("request")
        host = _str(request.get("host")) if isinstance(request, dict) else None
        if host is None and _str(target.get("url")):
            host = urlsplit(str(target["url"])).netloc or None
        pushes.append(Push(host, repository, tag, digest))
    return pushes


def _harbor(data: dict[str, Any]) -> list[Push]:
    repo = data.get("repository")
    repository = _str(repo.get("repo_full_name")) if isinstance(repo, dict) else None
    pushes = []
    for resource in data.get("resources") or []:
        if not isinstance(resource, dict) or repository is None:
            continue
        tag = _str(resource.get("tag"))
        if tag is None or is_digest_push(tag, _str(resource.get("digest"))):
            continue  # a push by digest: no tag moved, so nothing to ask about
        url = _str(resource.get("resource_url"))
        host = url.split("/", 1)[0] if url and "/" in url else None
        pushes.append(Push(host, repository, tag, _str(resource.get("digest"))))
    return pushes


def is_digest_push(tag: str, digest: str | None) -> bool:
    """Harbor names the digest in ``tag`` when an artifact is pushed by digest (its documented
    samples do; distribution leaves ``tag`` out instead). A digest is never a tag name: the
    tag grammar has no ':'."""
    return tag == digest or DIGEST_RE.fullmatch(tag) is not None


def github(event: str, body: Any) -> list[Push]:
    """GitHub ``package``/``registry_package`` events of container packages, published or
    updated. GHCR names repositories in lower case."""
    if event not in ("package", "registry_package"):
        return []
    body = _dict(body, "the body")
    if body.get("action") not in ("published", "updated"):
        return []
    package = _dict(body.get(event), event)
    kind = str(package.get("package_type") or package.get("ecosystem") or "").lower()
    if kind not in ("container", "docker"):
        return []
    version = package.get("package_version")
    version = version if isinstance(version, dict) else {}
    container = version.get("container_metadata")
    tag_info = container.get("tag") if isinstance(container, dict) else None
    tag = _str(tag_info.get("name")) if isinstance(tag_info, dict) else None
    digest = _str(tag_info.get("digest")) if isinstance(tag_info, dict) else None
    url = _str(version.get("package_url"))
    if url and "/" in url:
        host, _, path = url.partition("/")
        repository = path.rsplit(":", 1)[0] if ":" in path.rsplit("/", 1)[-1] else path
        repository = repository.split("@", 1)[0]
    else:
        owner = package.get("owner")
        login = _str(owner.get("login")) if isinstance(owner, dict) else None
        name = _str(package.get("name"))
        if login is None or name is None:
            raise InvalidInput(f"{event}.package_version.package_url is missing")
        host, repository = GHCR, f"{login}/{name}"
    return [Push(host.lower(), repository.lower(), tag, digest)]
