"""Imports every feature's tables so that ``Base.metadata`` knows the whole schema
(for Alembic and for tests that walk the schema)."""

from allegiance.audit import models as audit_models
from allegiance.definitions import models as definitions_models
from allegiance.events import models as events_models
from allegiance.kit import models as kit_models
from allegiance.kit.db import Base
from allegiance.ledger import models as ledger_models
from allegiance.members import models as members_models
from allegiance.rewards import models as rewards_models
from allegiance.rules import models as rules_models
from allegiance.tenants import models as tenants_models
from allegiance.tiers import models as tiers_models
from allegiance.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = [
    "audit_models", "definitions_models", "events_models", "kit_models", "ledger_models", "members_models", "metadata",
    "rewards_models", "rules_models", "tenants_models", "tiers_models", "webhooks_models",
]
