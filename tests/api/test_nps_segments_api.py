"""``GET /programs/{id}/nps``: per segment of the program (by code, with its id: the answers of
its members now), beside the overall figure and the account-attribute breakdown."""

from __future__ import annotations

from allegiance import campaigns, members
from allegiance.kit import clock
from tests.api.conftest import Api
from tests.api.test_engagement_api import NOW, _call, _setup


def test_nps_per_program_segment(api: Api) -> None:
    with clock.frozen(NOW):
        pid, _uid, (ann, bob, cy) = _setup(api)
        with api.db.transaction() as s:
            for acc, region in ((ann, "ES"), (bob, "ES-MD"), (cy, "FR")):
                members.update_account(s, api.tenant_id, acc, {"region": region}, actor="t")
        survey = _call(api, "POST", f"/programs/{pid}/surveys", {
            "code": "q", "name": "Q",
            "questions": [{"code": "nps", "text": "Recommend us?", "kind": "nps"}]}, 201)
        for acc, score in ((ann, 10), (bob, 2), (cy, 10)):
            _call(api, "POST", f"/surveys/{survey['id']}/responses",
                  {"account_id": acc, "answers": {"nps": score}}, 201)
        with api.db.transaction() as s:
            spain = campaigns.create_segment(s, api.tenant_id, pid, code="spain", name="Spain",
                                             condition='member.country == "ES"')
            campaigns.refresh_segment(s, api.tenant_id, spain.id)
            spain_id = spain.id
        report = _call(api, "GET", f"/programs/{pid}/nps")
        assert report["overall"]["responses"] == 3 and report["overall"]["score"] == 33
        assert report["by_segment"] == {"spain": {
            "segment_id": spain_id, "responses": 2, "promoters": 1, "passives": 0,
            "detractors": 1, "score": 0}}
        assert report["by_segment_attribute"]["us"]["responses"] == 2
