"""POST /v1/programs/{program_id}/simulations: replay a period under a draft definition.
A read: nothing is stored, so it needs no Idempotency-Key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from allegiance.kit.web import Ctx, need
from allegiance.simulation import output, service
from allegiance.simulation.schemas import SimulationIn

router = APIRouter(tags=["simulations"])


@router.post("/programs/{program_id}/simulations",
             summary="Simulate a draft definition over a period of history (writes nothing)")
def simulate(program_id: str, body: SimulationIn,
             ctx: Ctx = Depends(need("read"))) -> dict[str, Any]:
    ctx.check_program(program_id)
    with ctx.read() as session:
        result = service.simulate(session, ctx.tenant_id, program_id, body.definition,
                                  body.start, body.end, top=body.top).to_dict()
    if body.charts:
        result["charts"] = output.charts(result)
    return result
