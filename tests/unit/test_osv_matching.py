"""OSV matching and the vulnerability policy as pure functions: apk and dpkg edges that string
comparison gets wrong, OSV's range semantics, severities and Harbor's allowlist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tagwarden.vulnerabilities.matching import (
    Entry,
    affects,
    compile_ranges,
    match_packages,
    package_names,
)
from tagwarden.vulnerabilities.osv import normalise, parse_time
from tagwarden.vulnerabilities.policy import Found, blocking, evidence
from tagwarden.vulnerabilities.schemas import VulnerabilityPolicy
from tagwarden.vulnerabilities.severity import record_severity
from tagwarden.vulnerabilities.states import ScanStatus
from tests.factories import CRITICAL_V3, HIGH_V4, MEDIUM_V3, apk, deb, osv_record

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def ranged(*events: dict[str, str]) -> list[dict[str, object]]:
    return [{"type": "ECOSYSTEM", "events": list(events)}]


@pytest.mark.parametrize(
    ("installed", "hit"),
    [
        ("1.2.3-r2", True),  # "r2" > "r10" as strings: wrongly fixed under string order
        ("1.2.3-r9", True),
        ("1.2.3-r10", False),
        ("1.2.3-r11", False),
        ("1.2.10-r0", False),  # 1.2.10 > 1.2.9, although "1.2.10" < "1.2.9" as strings
        ("1.2.2-r99", True),
    ],
)
def test_apk_revisions_compare_as_numbers(installed: str, hit: bool) -> None:
    ranges = ranged({"introduced": "0"}, {"fixed": "1.2.3-r10"})
    found = affects("Alpine:v3.20", installed, ranges, [])
    assert (found is not None) is hit
    if hit:
        assert found is not None
        assert found.fixed_in == "1.2.3-r10"


@pytest.mark.parametrize(
    ("installed", "hit"),
    [
        ("2.0-1", False),  # epoch 0 < epoch 1: older than the introduced 1:1.0-1
        ("1:1.1-1", True),
        ("1:1.2~rc1-1", False),  # the fix itself
        ("1:1.2~beta1-1", True),  # "~" sorts before anything, even the end of the string
        ("1:1.2-1", False),  # 1.2 is newer than 1.2~rc1
        ("1:0.9-1", False),
    ],
)
def test_dpkg_epochs_and_tildes(installed: str, hit: bool) -> None:
    ranges = ranged({"introduced": "1:1.0-1"}, {"fixed": "1:1.2~rc1-1"})
    assert (affects("Debian:12", installed, ranges, []) is not None) is hit


def test_last_affected_includes_its_own_version_and_versions_list_matches_exactly() -> None:
    ranges = ranged({"introduced": "1.0-r0"}, {"last_affected": "1.0-r9"})
    assert affects("Alpine:v3.20", "1.0-r9", ranges, []) is not None
    assert affects("Alpine:v3.20", "1.0-r10", ranges, []) is None
    listed = affects("Debian:12", "3.0.0-1", [], ["3.0.0-1"])
    assert listed is not None
    assert listed.fixed_in is None


def test_events_out_of_order_are_evaluated_by_version() -> None:
    ranges = ranged(
        {"fixed": "2.0-r10"}, {"introduced": "2.0-r2"}, {"fixed": "1.5-r0"}, {"introduced": "0"}
    )
    assert affects("Alpine:v3.20", "1.4-r3", ranges, []) is not None
    assert affects("Alpine:v3.20", "1.6-r0", ranges, []) is None
    second = affects("Alpine:v3.20", "2.0-r3", ranges, [])
    assert second is not None
    assert second.fixed_in == "2.0-r10"


def test_debian_records_under_the_source_package_match_binary_packages() -> None:
    package = deb("libssl3", "3.0.11-1~deb12u1", source="openssl")
    assert package_names(package) == ("libssl3", "openssl")
    fix = ranged({"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"})
    entry = Entry("DSA-1", compile_ranges("Debian:12", fix), [], "high", ())
    found = match_packages([package], {("Debian:12", "openssl"): [entry]})
    assert [(f.osv_id, f.package, f.fixed_in) for f in found] == [
        ("DSA-1", "libssl3", "3.0.11-1~deb12u2")
    ]
    # Another release's record does not apply.
    assert match_packages([package], {("Debian:11", "openssl"): [entry]}) == []


def test_an_alpine_package_matches_only_its_own_release() -> None:
    fix = ranged({"introduced": "0"}, {"fixed": "3.3.2-r1"})
    entry = Entry("CVE-1", compile_ranges("Alpine:v3.20", fix), [], "low", ())
    package = apk("openssl", "3.3.1-r0")
    assert match_packages([package], {("Alpine:v3.19", "openssl"): [entry]}) == []
    assert len(match_packages([package], {("Alpine:v3.20", "openssl"): [entry]})) == 1
    # A release-less record name applies to every release.
    assert len(match_packages([package], {("Alpine", "openssl"): [entry]})) == 1


def test_severities_from_cvss_vectors_or_the_records_own_words() -> None:
    assert record_severity({"severity": [{"type": "CVSS_V3", "score": CRITICAL_V3}]}) == "critical"
    assert record_severity({"severity": [{"type": "CVSS_V3", "score": MEDIUM_V3}]}) == "medium"
    assert record_severity({"severity": [{"type": "CVSS_V4", "score": HIGH_V4}]}) == "high"
    assert record_severity({"database_specific": {"severity": "Moderate"}}) == "medium"
    assert record_severity({"severity": [{"type": "CVSS_V3", "score": "nonsense"}]}) == "unknown"
    assert record_severity({}) == "unknown"
    record = osv_record("DLA-1", "Debian:12", "x", [{"introduced": "0"}], db_severity="unimportant")
    record["affected"][0]["ecosystem_specific"] = {"severity": "critical"}
    assert normalise(record).affected[0].severity == "critical"
    assert normalise(record).severity == "low"


def test_nanosecond_times_parse() -> None:
    assert parse_time("2024-05-01T10:00:00.123456789Z") == datetime(
        2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC
    )


def found(
    osv_id: str, severity: str, fixed: str | None = "2", aliases: tuple[str, ...] = ()
) -> Found:
    return Found(osv_id, "pkg", "1", fixed, severity, aliases)


def test_block_severity_blocks_at_or_above_and_unknown_only_when_unknown() -> None:
    findings = [
        found("A", "critical"),
        found("B", "high"),
        found("C", "medium"),
        found("D", "unknown"),
    ]
    high = VulnerabilityPolicy.model_validate({"block_severity": "high"})
    assert [f.osv_id for f in blocking(high, findings, NOW)] == ["A", "B"]
    low = VulnerabilityPolicy.model_validate({"block_severity": "low"})
    assert [f.osv_id for f in blocking(low, findings, NOW)] == ["A", "B", "C"]
    unknown = VulnerabilityPolicy.model_validate({"block_severity": "unknown"})
    assert [f.osv_id for f in blocking(unknown, findings, NOW)] == ["A", "B", "C", "D"]
    assert blocking(VulnerabilityPolicy(), findings, NOW) == []


def test_only_fixable_and_the_allowlist_by_id_or_alias_until_it_expires() -> None:
    findings = [found("A", "critical", fixed=None), found("DSA-9", "critical", aliases=("CVE-9",))]
    fixable = VulnerabilityPolicy.model_validate({"block_severity": "high", "only_fixable": True})
    assert [f.osv_id for f in blocking(fixable, findings, NOW)] == ["DSA-9"]
    active = VulnerabilityPolicy.model_validate(
        {
            "block_severity": "high",
            "allowlist": [
                {"id": "CVE-9", "reason": "not reachable", "expires": "2026-12-31T00:00:00Z"},
                {"id": "A", "expires": (NOW - timedelta(seconds=1)).isoformat()},
            ],
        }
    )
    # CVE-9 (an alias) is allowlisted until the end of the month; A's entry has expired.
    assert [f.osv_id for f in blocking(active, findings, NOW)] == ["A"]
    later = NOW + timedelta(days=31)
    assert [f.osv_id for f in blocking(active, findings, later)] == ["A", "DSA-9"]


def test_evidence_counts_each_id_once_and_compares_with_the_previous_tag() -> None:
    findings = [
        found("A", "critical"),
        Found("A", "other", "1", None, "high"),
        found("B", "low", fixed=None),
        found("C", "unknown"),
    ]
    out = evidence(ScanStatus.SCANNED, findings, previous_ids={"B", "Z"}, osv_data=NOW, now=NOW)
    assert out.counts.model_dump() == {
        "critical": 1,
        "high": 0,
        "medium": 0,
        "low": 1,
        "unknown": 1,
    }
    assert out.fixable == 1  # only C is fixed everywhere it hits
    assert (out.new, out.fixed) == (["A", "C"], ["Z"])
    first = evidence(ScanStatus.SCANNED, findings, previous_ids=None, osv_data=NOW, now=NOW)
    assert first.new == ["A", "B", "C"]
    assert first.fixed == []
