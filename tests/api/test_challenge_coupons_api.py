"""A challenge with a ``coupon`` completion effect through the API: the definition names the
catalogue's coupon reward (a wrong one is refused naming ``effects[0].reward``), the
completion shows the issued code, the account's redemptions list it and the till uses it once."""

from __future__ import annotations

from datetime import UTC, datetime

from allegiance.kit import clock
from tests.api.conftest import Api
from tests.api.test_engagement_api import NOW, _answer, _call, _setup
from tests.support.invariants import assert_ledger_invariants


def test_a_completion_issues_a_coupon_code_the_till_uses_once(api: Api) -> None:
    with clock.frozen(NOW):
        pid, uid, (ann, bob, _cy) = _setup(api)
        _call(api, "POST", f"/programs/{pid}/rewards",
              {"code": "mug", "name": "Mug", "kind": "physical", "unit_id": uid, "cost": 10},
              201)
        _call(api, "POST", f"/programs/{pid}/rewards",
              {"code": "ten-off", "name": "10% off", "kind": "coupon", "unit_id": uid,
               "cost": 100, "code_valid_days": 14}, 201)
        body = {"code": "two-answers", "name": "Answer twice", "trigger": "activity:forum_answer",
                "target": 2, "period": "month",
                "effects": [{"type": "coupon", "reward": "mug"}]}
        for effects in ([{"type": "coupon", "reward": "mug"}], [{"type": "coupon"}]):
            err = _call(api, "POST", f"/programs/{pid}/challenges", dict(body, effects=effects),
                        422)["error"]
            assert (err["code"], err["field"]) == ("invalid_challenge", "effects[0].reward")
        _call(api, "POST", f"/programs/{pid}/challenges",
              dict(body, effects=[{"type": "coupon", "reward": "ten-off"}]), 201)
        for n in (1, 2):
            _answer(api, pid, ann, f"a{n}", datetime(2026, 3, 10 + n, 15, tzinfo=UTC))
        _answer(api, pid, bob, "b1", datetime(2026, 3, 11, 15, tzinfo=UTC))
        [progress] = _call(api, "GET", f"/programs/{pid}/accounts/{ann}/challenges")["items"]
        [effect] = progress["history"][0]["effects"]
        assert effect["type"] == "coupon" and effect["reward"] == "ten-off"
        code = effect["code"]
        listed = _call(api, "GET", f"/programs/{pid}/redemptions?account_id={ann}")["items"]
        assert [(r["id"], r["code"], r["points"], r["status"]) for r in listed] == [
            (effect["redemption_id"], code, 0, "fulfilled")]
        assert _call(api, "GET", f"/programs/{pid}/redemptions?account_id={bob}")["items"] == []
        assert _call(api, "POST", "/coupons/validate", {"code": code})["valid"] is True
        assert _call(api, "POST", "/coupons/redeem", {"code": code})["used_at"] is not None
        assert _call(api, "POST", "/coupons/redeem", {"code": code}, 409)["error"][
            "code"] == "coupon_used"
    assert_ledger_invariants(api.db)
