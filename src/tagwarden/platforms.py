"""Architecture names (pure): one spelling for what registries and devices call a CPU.

Shared by the registry clients (what a tag provides) and the rollout planner (what a device
runs), so a device reporting ``aarch64`` or ``linux/arm64/v8`` matches a tag's ``arm64`` row.
"""

from __future__ import annotations

# containerd's normalisation (platforms.Normalize): the same CPU is reported under several names,
# and devices must match one architecture string whatever the registry called it.
_ARCH_ALIASES = {"aarch64": "arm64", "x86_64": "amd64", "x86-64": "amd64", "i386": "386"}
_IMPLIED_VARIANT = {"armhf": ("arm", "v7"), "armel": ("arm", "v6")}
# Variants that every CPU of that architecture has, so they say nothing (`arm64/v8` is `arm64`).
_DEFAULT_VARIANTS = {("arm64", "v8"), ("amd64", "v1")}


def normalise_architecture(architecture: str, variant: str | None = None) -> str:
    """``arm64``/``arm64/v8``/``aarch64`` → ``arm64``; ``arm`` + ``v7`` → ``arm/v7``."""
    arch = architecture.strip().lower().removeprefix("linux/")  # devices often say linux/arm64
    var = (variant or "").strip().lower()
    if "/" in arch:  # already written as "arch/variant"
        arch, _, embedded = arch.partition("/")
        var = var or embedded
    if arch in _IMPLIED_VARIANT:
        arch, implied = _IMPLIED_VARIANT[arch]
        var = var or implied
    arch = _ARCH_ALIASES.get(arch, arch)
    if not var or (arch, var) in _DEFAULT_VARIANTS:
        return arch
    return f"{arch}/{var}"
