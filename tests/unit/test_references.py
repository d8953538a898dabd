"""The OCI reference grammar, as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwarden import references


@pytest.mark.parametrize("name", ["redis", "grafana", "my-app", "a__b", "node.js", "x1"])
def test_valid_image_names(name: str) -> None:
    assert references.image_name_error(name) is None


@pytest.mark.parametrize(
    "name", ["Redis", "-redis", "redis-", "re dis", "a/b", "", "a..b", "a___b"]
)
def test_invalid_image_names(name: str) -> None:
    assert references.image_name_error(name) is not None


@pytest.mark.parametrize("namespace", ["library", "grafana", "org/team", "a/b/c"])
def test_namespaces_may_hold_slashes(namespace: str) -> None:
    assert references.namespace_error(namespace) is None


@pytest.mark.parametrize(
    "registry", ["docker.io", "ghcr.io", "quay.io", "127.0.0.1:5000", "localhost", "[::1]:5000"]
)
def test_valid_registries(registry: str) -> None:
    assert references.registry_error(registry) is None


@pytest.mark.parametrize("registry", ["bad host", "-x.io", "x.io:port", "https://ghcr.io"])
def test_invalid_registries(registry: str) -> None:
    assert references.registry_error(registry) is not None


@pytest.mark.parametrize("tag", ["latest", "7.2.5-alpine", "v2.0.0-rc1", "_x", "A" * 128])
def test_valid_tags(tag: str) -> None:
    assert references.tag_error(tag) is None


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a b", "a/b", "A" * 129, "é"])
def test_invalid_tags(tag: str) -> None:
    assert references.tag_error(tag) is not None


@given(st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z"))
def test_every_tag_of_the_grammar_is_accepted(tag: str) -> None:
    assert references.tag_error(tag) is None


def test_repository_path_length_is_bounded() -> None:
    assert references.repository_error("docker.io", "a" * 200, "b" * 60) is not None
    assert references.repository_error("docker.io", "library", "redis") is None


def test_digest_of_a_reference() -> None:
    assert references.digest_of("redis:7.2.5-alpine@sha256:abc") == "sha256:abc"
    assert references.digest_of("sha256:abc") == "sha256:abc"
    assert references.digest_of("redis:7") is None


def test_split_reference_fills_in_docker_hub_and_library() -> None:
    assert references.split_reference("redis") == ("docker.io", "library", "redis")
    assert references.split_reference("index.docker.io/bitnami/redis") == (
        "docker.io",
        "bitnami",
        "redis",
    )
    assert references.split_reference("ghcr.io/org/team/app") == ("ghcr.io", "org/team", "app")
    assert references.split_reference("localhost/app") == ("localhost", "library", "app")
