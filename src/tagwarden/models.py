"""Every table, imported in one place for Alembic and for tests."""

from tagwarden.approvals.models import ApprovalRequest
from tagwarden.audit.models import AuditEntry
from tagwarden.auth.models import ApiToken
from tagwarden.catalogue.models import Image, ImageTag
from tagwarden.db import Base
from tagwarden.monitor.models import DiscoveredTag

__all__ = [
    "ApiToken",
    "ApprovalRequest",
    "AuditEntry",
    "Base",
    "DiscoveredTag",
    "Image",
    "ImageTag",
]
