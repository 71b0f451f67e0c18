"""Co-marketing (MDF) funds: budgets, partner allocations, pre-approvals, claims with proof,
reimbursement by formula into money wallets, expiry."""

from allegiance.mdf.domain import Formula, PartnerView
from allegiance.mdf.models import MdfAllocation, MdfClaim, MdfFund
from allegiance.mdf.service import (
    accrue,
    allocate,
    approve_claim,
    create_fund,
    expire_funds,
    get_claim,
    get_fund,
    list_claims,
    partner_view,
    preapprove,
    reject_claim,
    request,
    submit_claim,
)

__all__ = [
    "Formula", "MdfAllocation", "MdfClaim", "MdfFund", "PartnerView", "accrue", "allocate",
    "approve_claim", "create_fund", "expire_funds", "get_claim", "get_fund", "list_claims",
    "partner_view", "preapprove", "reject_claim", "request", "submit_claim",
]
