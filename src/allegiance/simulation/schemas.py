"""HTTP shapes of simulations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from allegiance.kit.schemas import Input


class SimulationIn(Input):
    definition: dict[str, Any] = Field(description="the draft program definition (as YAML "
                                                   "files hold it)")
    start: datetime = Field(alias="from", description="the period's start (with offset)")
    end: datetime = Field(alias="to", description="the period's end, excluded")
    top: int = Field(10, ge=0, le=1000, description="top earners to list")
    charts: bool = Field(False, description="add the SVG charts to the answer")

    model_config = {"extra": "forbid", "populate_by_name": True}
