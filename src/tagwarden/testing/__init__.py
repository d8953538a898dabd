"""Test doubles that ship with tagwarden: a fake registry and a clock that does not wait."""

from tagwarden.testing.clock import FakeClock
from tagwarden.testing.fake_faults import Faults, RequestRecord, RequestStats
from tagwarden.testing.fake_records import FakeRepository, PlatformSpec, TagRecord
from tagwarden.testing.fake_registry import FakeRegistry
from tagwarden.testing.fake_server import demo_environment, running, seed_demo, serve
from tagwarden.testing.harness import HUB_URL, OCI_URL, RegistryHarness, registry_harness

__all__ = [
    "HUB_URL",
    "OCI_URL",
    "FakeClock",
    "FakeRegistry",
    "FakeRepository",
    "Faults",
    "PlatformSpec",
    "RegistryHarness",
    "RequestRecord",
    "RequestStats",
    "TagRecord",
    "demo_environment",
    "registry_harness",
    "running",
    "seed_demo",
    "serve",
]
