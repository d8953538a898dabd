"""Every table, imported in one place for Alembic and for tests."""

from tagwarden.approvals.models import ApprovalDecision, ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.auth.models import ApiToken
from tagwarden.catalogue.models import Image, ImagePolicy, ImageTag
from tagwarden.db import Base
from tagwarden.devices.models import App, Device, DeviceApp
from tagwarden.evidence.models import DigestEvidence, SigningKey
from tagwarden.monitor.models import DiscoveredTag
from tagwarden.notify.models import NotificationChannel, NotificationDelivery, NotificationEvent
from tagwarden.rollouts.models import Rollout, RolloutDevice
from tagwarden.rules.models import ApprovalRule, RuleHold
from tagwarden.vulnerabilities.models import Finding, OsvAffected, OsvRecord, Sbom

__all__ = [
    "ApiToken",
    "App",
    "ApprovalDecision",
    "ApprovalRequest",
    "ApprovalRule",
    "AuditEntry",
    "Base",
    "Device",
    "DeviceApp",
    "DigestEvidence",
    "DiscoveredTag",
    "Finding",
    "Image",
    "ImagePolicy",
    "ImageTag",
    "NotificationChannel",
    "NotificationDelivery",
    "NotificationEvent",
    "OsvAffected",
    "OsvRecord",
    "Rollout",
    "RolloutDevice",
    "RuleHold",
    "Sbom",
    "SigningKey",
]
