"""Sizes as evidence (pure, no I/O): compressed bytes per platform, growth and new bytes against
the previous approved tag, the bytes a device downloads, and the size policy's verdict.

A platform's compressed size is its config's size plus every layer's, as its manifest lists
them (what the registry stores). What a device downloads is different: only the blobs (config
and layers, by digest) its current image does not already hold, each once.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tagwarden.evidence.schemas import PolicyMode, SizePolicy
from tagwarden.registry.manifests import Blob, ImageBlobs

# Without a max_growth_percent of its own, an image's tag "grew" past this (tag.size_grew).
DEFAULT_GROWTH_EVENT_PERCENT = 20.0


class SizeSource(enum.StrEnum):
    """Where the sizes came from: the platform manifests, or only the Hub API's figures."""

    MANIFESTS = "manifests"
    HUB = "hub"


def growth_event_percent(policy: SizePolicy) -> float:
    """Growth past which ``tag.size_grew`` is sent: the policy's limit, or 20 %."""
    if policy.max_growth_percent is not None:
        return policy.max_growth_percent
    return DEFAULT_GROWTH_EVENT_PERCENT


@dataclass(frozen=True, slots=True)
class Previous:
    """The image's most recent approved tag other than the one under review, and its sizes."""

    tag: str
    digest: str
    sizes: Mapping[str, int]
    blobs: Mapping[str, frozenset[str]]  # architecture → blob digests held (config + layers)


def compressed_bytes(platforms: Mapping[str, ImageBlobs]) -> dict[str, int]:
    return {arch: blobs.compressed_bytes for arch, blobs in sorted(platforms.items())}


def growth_percent(current: Mapping[str, int], previous: Mapping[str, int]) -> dict[str, float]:
    """Per platform both have, ``(now - before) / before`` in percent, to one decimal.

    A platform the previous tag lacked has nothing to grow from, and is left out.
    """
    growth: dict[str, float] = {}
    for arch in sorted(current):
        before = previous.get(arch)
        if before is None or before <= 0:
            continue
        growth[arch] = round((current[arch] - before) * 100.0 / before, 1)
    return growth


def unheld_bytes(target: ImageBlobs, held: Collection[str]) -> int:
    """Bytes of the target's blobs not in ``held``, each distinct blob counted once."""
    return sum(size for digest, size in target.distinct().items() if digest not in held)


def new_bytes(
    current: Mapping[str, ImageBlobs], previous: Mapping[str, Collection[str]]
) -> dict[str, int]:
    """Per platform the previous tag also has: bytes of blobs it did not hold."""
    return {
        arch: unheld_bytes(blobs, previous[arch])
        for arch, blobs in sorted(current.items())
        if arch in previous
    }


def download_bytes(
    target: ImageBlobs | None,
    *,
    held: Collection[str] | None,
    target_size: int | None,
) -> int | None:
    """What one device downloads to run the target.

    ``held``: the blobs of the device's current image, or None when they are not known (no
    image yet, or an image without stored blobs): then all of the target is counted. Without
    the target's blobs only its compressed size is known, and that is the answer.
    """
    if target is None:
        return target_size
    if held is None:
        return sum(target.distinct().values())
    return unheld_bytes(target, held)


def size_evidence(
    platforms: Mapping[str, ImageBlobs],
    *,
    hub_sizes: Mapping[str, int] | None = None,
    manifests: Mapping[str, str] | None = None,
    previous: Previous | None,
    checked_at: datetime,
) -> dict[str, Any]:
    """The stored size evidence of a digest.

    ``platforms`` are the platform manifests read from the registry (``manifests``: their
    digests); ``hub_sizes`` the Hub API's compressed sizes, used where no manifest was read
    (then there are no blobs, and no new bytes for that platform).
    """
    manifests = manifests or {}
    sizes = dict(hub_sizes or {})
    sizes.update(compressed_bytes(platforms))
    evidence: dict[str, Any] = {
        "platforms": dict(sorted(sizes.items())),
        "previous": {"tag": previous.tag, "digest": previous.digest} if previous else None,
        "growth_percent": growth_percent(sizes, previous.sizes) if previous else {},
        "new_bytes": new_bytes(platforms, previous.blobs) if previous else {},
        "blobs": {
            arch: stored_blobs(blobs, manifests.get(arch))
            for arch, blobs in sorted(platforms.items())
        },
        "source": (SizeSource.MANIFESTS if platforms else SizeSource.HUB).value,
        "checked_at": checked_at.isoformat(),
    }
    return evidence


def stored_blobs(blobs: ImageBlobs, manifest: str | None = None) -> dict[str, Any]:
    return {
        "manifest": manifest,
        "config": {"digest": blobs.config.digest, "size": blobs.config.size},
        "layers": [{"digest": layer.digest, "size": layer.size} for layer in blobs.layers],
    }


def blobs_of(evidence: Mapping[str, Any] | None) -> dict[str, ImageBlobs]:
    """The blobs kept in stored evidence, per platform (none for Hub-only evidence)."""
    if not evidence or not isinstance(evidence.get("blobs"), dict):
        return {}
    found: dict[str, ImageBlobs] = {}
    for arch, stored in evidence["blobs"].items():
        try:
            config = _blob(stored["config"])
            layers = tuple(_blob(layer) for layer in stored["layers"])
        except (KeyError, TypeError, ValueError):
            continue  # written by hand or by an older version: no blobs for this platform
        found[arch] = ImageBlobs(config, layers)
    return found


def sizes_of(evidence: Mapping[str, Any] | None) -> dict[str, int]:
    if not evidence or not isinstance(evidence.get("platforms"), dict):
        return {}
    return {
        arch: size
        for arch, size in evidence["platforms"].items()
        if isinstance(size, int) and not isinstance(size, bool)
    }


def _blob(stored: Any) -> Blob:
    digest, size = stored["digest"], stored["size"]
    if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool):
        raise ValueError("not a blob")
    return Blob(digest, size)


def previous_from(tag: str, digest: str, evidence: Mapping[str, Any] | None) -> Previous:
    """A previous approved tag as :func:`size_evidence` compares against, from its evidence."""
    return Previous(
        tag=tag,
        digest=digest,
        sizes=sizes_of(evidence),
        blobs={arch: frozenset(b.distinct()) for arch, b in blobs_of(evidence).items()},
    )


def size_failures(evidence: Mapping[str, Any] | None, policy: SizePolicy) -> list[str]:
    """Why the evidence fails the policy, one line per failed check; empty when it passes.

    No evidence (the registry could not be read, or said no size) fails a policy with a limit:
    a gate that cannot see the size does not let the tag through as if it were small.
    """
    if policy.mode == PolicyMode.OFF or (
        policy.max_growth_percent is None and policy.max_bytes is None
    ):
        return []
    sizes = sizes_of(evidence)
    if not sizes:
        return ["no size evidence"]
    failures: list[str] = []
    if policy.max_bytes is not None:
        failures.extend(
            f"{arch}: {size} bytes, more than max_bytes {policy.max_bytes}"
            for arch, size in sorted(sizes.items())
            if size > policy.max_bytes
        )
    if policy.max_growth_percent is not None and evidence is not None:
        failures.extend(
            f"{arch}: grew {growth} %, more than max_growth_percent {policy.max_growth_percent:g}"
            for arch, growth in sorted(grown(evidence, policy.max_growth_percent).items())
        )
    return failures


def grown(evidence: Mapping[str, Any], threshold: float) -> dict[str, float]:
    """Platforms whose growth is over ``threshold`` percent."""
    growth = evidence.get("growth_percent")
    if not isinstance(growth, dict):
        return {}
    return {
        arch: float(value)
        for arch, value in growth.items()
        if isinstance(value, int | float) and math.isfinite(value) and value > threshold
    }


def blobs_by_digest(
    evidence: Mapping[str, Mapping[str, Any] | None],
) -> dict[str, dict[str, ImageBlobs]]:
    """Digest → architecture → blobs, from an image's stored evidence (keyed by its digest).

    A device may report either its tag's digest or its platform manifest's: both find them.
    """
    found: dict[str, dict[str, ImageBlobs]] = {}
    for digest, stored in evidence.items():
        platforms = blobs_of(stored)
        if not platforms:
            continue
        found.setdefault(digest, {}).update(platforms)
        for arch, entry in (stored or {}).get("blobs", {}).items():
            manifest = entry.get("manifest") if isinstance(entry, dict) else None
            if isinstance(manifest, str) and arch in platforms:
                found.setdefault(manifest, {})[arch] = platforms[arch]
    return found


def device_download_bytes(
    architecture: str,
    current_digest: str | None,
    target: Mapping[str, Any] | None,
    known: Mapping[str, Mapping[str, ImageBlobs]],
) -> int | None:
    """What one device of ``architecture`` downloads to run the target (its size evidence),
    holding the image ``current_digest``: blobs of the target it lacks; all of them when its
    current image (or that image's blobs) is not known; None when the target's size is not."""
    current = known.get(current_digest or "", {}).get(architecture)
    return download_bytes(
        blobs_of(target).get(architecture),
        held=frozenset(current.distinct()) if current is not None else None,
        target_size=sizes_of(target).get(architecture),
    )
