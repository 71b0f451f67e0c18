"""Imports every feature's tables so that ``Base.metadata`` knows the whole schema
(for Alembic and for tests that walk the schema)."""

from allegiance.analytics import models as analytics_models
from allegiance.audit import models as audit_models
from allegiance.campaigns import models as campaigns_models
from allegiance.cashback import models as cashback_models
from allegiance.claims import models as claims_models
from allegiance.definitions import models as definitions_models
from allegiance.engagement import models as engagement_models
from allegiance.events import models as events_models
from allegiance.fx import models as fx_models
from allegiance.imports import models as imports_models
from allegiance.kit import models as kit_models
from allegiance.kit.db import Base
from allegiance.ledger import models as ledger_models
from allegiance.mdf import models as mdf_models
from allegiance.members import models as members_models
from allegiance.memberships import models as memberships_models
from allegiance.operators import models as operators_models
from allegiance.payouts import models as payouts_models
from allegiance.referrals import models as referrals_models
from allegiance.rewards import models as rewards_models
from allegiance.rules import models as rules_models
from allegiance.tenants import models as tenants_models
from allegiance.tiers import models as tiers_models
from allegiance.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = [
    "analytics_models",
    "audit_models",
    "campaigns_models",
    "cashback_models",
    "claims_models",
    "definitions_models",
    "engagement_models",
    "events_models",
    "fx_models",
    "imports_models",
    "kit_models",
    "ledger_models",
    "mdf_models",
    "members_models",
    "memberships_models",
    "metadata",
    "operators_models",
    "payouts_models",
    "referrals_models",
    "rewards_models",
    "rules_models",
    "tenants_models",
    "tiers_models",
    "webhooks_models",
]
