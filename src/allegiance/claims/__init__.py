"""Partner sales claims: submit an invoice, duplicate detection, review, earn on approval."""

from allegiance.claims.domain import invoice_key
from allegiance.claims.models import ClaimInvoiceKey, SalesClaim
from allegiance.claims.service import approve, get_claim, list_claims, reject, submit

__all__ = ["ClaimInvoiceKey", "SalesClaim", "approve", "get_claim", "invoice_key",
           "list_claims", "reject", "submit"]
