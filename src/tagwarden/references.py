"""Image references (pure): the OCI/Docker grammar for registries, repository paths, tags and
digests, and how a written reference splits into its parts.

Every part names images, so this module sits below all of them (beside ``versions.py`` and
``platforms.py``): the registry clients check tag names with it, and the catalogue, which asks
the registry layer whether a host is allowed, validates with it too.

From distribution/reference's grammar: path components are lowercase alphanumerics joined by
one of ``.``, ``_``, ``__`` or runs of ``-``; a tag is ``[\\w][\\w.-]{0,127}``.

Every check is a ``fullmatch``: ``$`` also matches before a trailing newline, so ``"7.2\\n"``
would pass a ``match`` against ``^…$`` and reach the database and the registry.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"

COMPONENT_RE = re.compile(_COMPONENT)
NAMESPACE_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
DOMAIN_RE = re.compile(_DOMAIN)
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")

# The same grammar for the OpenAPI document and pydantic's ``pattern`` (anchored both ends).
TAG_PATTERN = rf"^{TAG_RE.pattern}$"
COMPONENT_PATTERN = rf"^{_COMPONENT}$"
NAMESPACE_PATTERN = rf"^{NAMESPACE_RE.pattern}$"
DOMAIN_PATTERN = rf"^{_DOMAIN}$"
DIGEST_PATTERN = rf"^{DIGEST_RE.pattern}$"

MAX_REPOSITORY_LENGTH = 255
# Every name an image's registry field may use for Docker Hub.
DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
# How much of a refused value an error message repeats: enough to recognise it, no more.
_SHOWN = 60


def shown(value: str) -> str:
    """A refused value as an error message may quote it: repr'd (newlines and controls
    escaped) and cut short."""
    return repr(value) if len(value) <= _SHOWN else repr(value[:_SHOWN]) + "…"


def is_tag(name: str) -> bool:
    """Whether ``name`` is a tag of the grammar: the one check for the API, the CLI and the
    registry clients (which drop names outside it before any request names them)."""
    return TAG_RE.fullmatch(name) is not None


def image_name_error(name: str) -> str | None:
    if not COMPONENT_RE.fullmatch(name):
        return (
            f"image_name {shown(name)} is not a valid repository name component "
            "(lowercase letters and digits, separated by '.', '_', '__' or '-')"
        )
    return None


def namespace_error(namespace: str) -> str | None:
    if not NAMESPACE_RE.fullmatch(namespace):
        return (
            f"namespace {shown(namespace)} is not a valid repository path "
            "(components of lowercase letters and digits, joined by '/')"
        )
    return None


def registry_error(registry: str) -> str | None:
    if not DOMAIN_RE.fullmatch(registry):
        return (
            f"registry {shown(registry)} is not a valid registry host (e.g. docker.io, ghcr.io:443)"
        )
    return None


def tag_error(tag: str) -> str | None:
    if not is_tag(tag):
        return (
            f"tag {shown(tag)} is not a valid tag "
            "(letters, digits, '_', '.', '-'; not starting with '.' or '-'; at most 128)"
        )
    return None


def digest_error(digest: str) -> str | None:
    if not DIGEST_RE.fullmatch(digest):
        return f"digest {shown(digest)} is not a valid digest (algorithm:hex, e.g. sha256:…)"
    return None


def repository_error(registry: str, namespace: str, image_name: str) -> str | None:
    """The first thing wrong with a reference, or None when it is valid."""
    for error in (
        registry_error(registry),
        namespace_error(namespace),
        image_name_error(image_name),
    ):
        if error:
            return error
    if len(f"{namespace}/{image_name}") > MAX_REPOSITORY_LENGTH:
        return f"repository path is longer than {MAX_REPOSITORY_LENGTH} characters"
    return None


def is_docker_hub(registry_host: str) -> bool:
    return registry_host.strip().lower() in DOCKER_HUB_HOSTS


def split_reference(name: str) -> tuple[str, str, str]:
    """``redis`` → docker.io/library/redis; ``ghcr.io/org/app`` → ghcr.io/org/app."""
    parts = name.strip().lower().split("/")
    registry = "docker.io"
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
    if is_docker_hub(registry):
        registry = "docker.io"
    if len(parts) == 1:
        return registry, "library", parts[0]
    return registry, "/".join(parts[:-1]), parts[-1]


def digest_of(reference: str | None) -> str | None:
    """The digest in ``redis:7.2.5-alpine@sha256:…`` (or a bare ``sha256:…``)."""
    if not reference:
        return None
    if "@" in reference:
        return reference.rsplit("@", 1)[1] or None
    return reference if reference.startswith("sha256:") else None


def is_signature_tag(tag: str) -> bool:
    """cosign's and OCI's artifact tags (``sha256-<hex>.sig/.att/.sbom``, ``sha256-<hex>``):
    they hold signatures, attestations and referrer lists, never an image to run."""
    head, _, suffix = tag.partition(".")
    if suffix not in ("", "sig", "att", "sbom"):
        return False
    algorithm, dash, hexpart = head.partition("-")
    return (
        dash == "-"
        and algorithm in ("sha256", "sha512")
        and len(hexpart) in (64, 128)
        and all(c in "0123456789abcdef" for c in hexpart)
    )
