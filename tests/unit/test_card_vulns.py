"""The approval card's vulnerabilities part (pure): tones by the image's policy, new/fixed
against the previous approved tag, the package diff and the findings table."""

from __future__ import annotations

from datetime import timedelta

from tagwarden.vulnerabilities.schemas import FindingOut, PackagesDiffOut, VulnerabilityPolicy
from tagwarden.web.card import Tone
from tagwarden.web.card_vulns import PackageChange, package_changes, vulnerability_view
from tests.vuln_card_data import FOUND, MATCHED, OSV_DATA, PACKAGES, vulnerability_evidence

PREVIOUS = {"tag": "7.2.4", "digest": "sha256:" + "0" * 63 + "1"}


def findings() -> list[FindingOut]:
    return [
        FindingOut(
            osv_id=f.osv_id,
            package=f.package,
            ecosystem="Debian:12",
            installed=f.installed,
            fixed_in=f.fixed_in,
            severity=f.severity,
            aliases=list(f.aliases),
            digest="sha256:" + "a" * 64,
        )
        for f in FOUND
    ]


def policy(**body: object) -> VulnerabilityPolicy:
    return VulnerabilityPolicy.model_validate(body)


def tones(view: object) -> dict[str, Tone]:
    return {c.severity: c.tone for c in view.counts}  # type: ignore[attr-defined]


def test_counts_at_or_above_block_severity_are_danger_the_rest_muted_zero_ok() -> None:
    stored = vulnerability_evidence(previous=PREVIOUS, packages=PACKAGES)
    view = vulnerability_view(stored, policy(block_severity="high"), findings(), now=MATCHED)
    assert {c.severity: c.count for c in view.counts} == {
        "critical": 1,
        "high": 1,
        "medium": 0,
        "low": 1,
        "unknown": 0,
    }
    assert tones(view) == {
        "critical": Tone.DANGER,
        "high": Tone.DANGER,
        "medium": Tone.OK,
        "low": Tone.MUTED,
        "unknown": Tone.OK,
    }
    assert view.tone == Tone.DANGER
    assert view.label == "3 findings"
    assert view.blocked == ("CVE-2026-1111", "CVE-2026-2222")
    assert view.fixable == 2
    assert view.osv_data == OSV_DATA


def test_without_block_severity_nothing_is_danger() -> None:
    view = vulnerability_view(vulnerability_evidence(), policy(), findings(), now=MATCHED)
    assert Tone.DANGER not in tones(view).values()
    assert all(f.tone == Tone.MUTED for f in view.findings)
    assert view.tone == Tone.MUTED
    assert view.blocked == ()


def test_new_and_fixed_name_the_previous_tag() -> None:
    stored = vulnerability_evidence(previous=PREVIOUS)
    view = vulnerability_view(stored, policy(), findings(), now=MATCHED)
    assert view.previous_tag == "7.2.4"
    assert view.previous_digest == PREVIOUS["digest"]
    assert view.new == ("CVE-2026-1111", "CVE-2026-3333")
    assert view.fixed == ("CVE-2025-9999",)
    assert view.packages is None  # not filled in yet: the card leaves the diff out


def test_findings_worst_first_and_the_allowlist_and_only_fixable_unblock() -> None:
    rules = policy(
        block_severity="high",
        only_fixable=True,
        allowlist=[{"id": "DSA-5800-1", "expires": (MATCHED + timedelta(days=1)).isoformat()}],
    )
    view = vulnerability_view(vulnerability_evidence(), rules, findings(), now=MATCHED)
    assert [f.id for f in view.findings] == ["CVE-2026-1111", "CVE-2026-2222", "CVE-2026-3333"]
    # The critical is allowlisted by its alias, the high has no fix: nothing blocks.
    assert [f.tone for f in view.findings] == [Tone.MUTED] * 3
    assert view.blocked == ()
    first = view.findings[0]
    assert (first.package, first.installed, first.fixed_in, first.aliases) == (
        "openssl",
        "3.0.13-1~deb12u1",
        "3.0.15-1~deb12u1",
        ("DSA-5800-1",),
    )
    expired = vulnerability_view(
        vulnerability_evidence(), rules, findings(), now=MATCHED + timedelta(days=2)
    )
    assert expired.blocked == ("CVE-2026-1111",)


def test_the_package_diff_reads_added_removed_upgraded_and_skips_what_is_not_a_package() -> None:
    assert package_changes(PACKAGES) == (
        PackageChange("added", "curl", "7.88.1-10+deb12u8"),
        PackageChange("removed", "wget", "1.21.3-1+b2"),
        PackageChange("upgraded", "openssl", "3.0.11-1~deb12u2 → 3.0.13-1~deb12u1"),
    )
    assert package_changes({"added": [{"version": "1"}, "x"], "upgraded": None}) == ()
    assert package_changes({}) == ()
    assert package_changes(None) is None


def test_not_matched_unreadable_and_not_scanned_evidence() -> None:
    none = vulnerability_view(None, policy(), [], now=MATCHED)
    assert (none.label, none.tone, none.counts) == ("not matched yet", Tone.MUTED, ())
    bad = vulnerability_view({"status": "nonsense"}, policy(), [], now=MATCHED)
    assert bad.tone == Tone.WARNING
    no_sbom = vulnerability_view(
        {"status": "no_sbom"}, policy(block_severity="low"), [], now=MATCHED
    )
    assert no_sbom.label == "no SBOM: nothing to match"
    assert all(c.tone == Tone.OK for c in no_sbom.counts)
    clean = vulnerability_view({"status": "scanned"}, policy(block_severity="low"), [], now=MATCHED)
    assert (clean.label, clean.tone) == ("no findings", Tone.OK)


def test_a_per_platform_package_diff_is_shown_with_each_rows_architecture() -> None:
    one = PackagesDiffOut.model_validate(PACKAGES)
    rows = package_changes({"arm64": one, "amd64": one})
    assert rows is not None
    assert [r.architecture for r in rows][:3] == ["amd64"] * 3  # sorted by architecture
    assert {r.architecture for r in rows} == {"amd64", "arm64"}
    assert len(rows) == 2 * len(package_changes(one) or ())
    assert all(r.architecture is None for r in package_changes(one) or ())
