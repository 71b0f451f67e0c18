"""HTTP routes of GDPR: a member's personal data as JSON, and erasure. Admin only; both
leave an audit row."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from allegiance import audit
from allegiance.kit.web import Ctx, need
from allegiance.privacy import service
from allegiance.privacy.schemas import ErasureRead, ErasureRequest, PersonalData

router = APIRouter(tags=["privacy"])


@router.get("/accounts/{account_id}/personal-data", response_model=PersonalData,
            summary="Export a member's personal data (GDPR access / portability)")
def export_personal_data(account_id: str, ctx: Ctx = Depends(need("admin"))) -> PersonalData:
    with ctx.transaction() as session:
        data = service.export_member(session, ctx.tenant_id, account_id)
        audit.record(session, ctx.tenant_id, actor=ctx.actor,
                     action="account.personal_data_exported", object_type="account",
                     object_id=account_id)
    return PersonalData.model_validate(data)


@router.post("/accounts/{account_id}/erase", response_model=ErasureRead,
             summary="Erase a member's personal data (pseudonymise; the ledger stays)")
def erase(account_id: str, body: ErasureRequest, ctx: Ctx = Depends(need("admin"))) -> Response:
    def run(session: Session) -> ErasureRead:
        report = service.erase_member(session, ctx.tenant_id, account_id, actor=ctx.actor,
                                      reason=body.reason)
        return ErasureRead.model_validate(report.as_dict())

    return ctx.write(body, run, 200)
