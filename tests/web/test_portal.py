"""The member portal: balances, history with filters and CSV, tier, catalogue and redeem,
orders, branding; and a member sees only its own account tree."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from allegiance import ledger, members, operators, rewards, tenants
from tests.web.conftest import Web, post


def test_balance_tier_and_branding(web: Web) -> None:
    page = web.member().get("/portal/home").text
    assert "14,000" in page  # dealer_west: 12,000 + 4,500 - 2,500
    assert "Northwind Partner Rewards" in page and "--brand: #0b5d4b" in page
    assert "Partner: Silver" in page and "more spend this period to reach <strong>gold" in page
    # The tier year is shown by its first and last days, not the exclusive end.
    year = re.search(r"Period (\d{4})-01-01 to (\d{4})-12-31\.", page)
    assert year is not None and year.group(1) == year.group(2), page


def test_branding_colours_are_checked(web: Web) -> None:
    with web.db.transaction() as s:
        program = tenants.get_program(s, web.tenant_id, web.program())
        settings = {**program.settings, "branding": {
            "name": "Evil", "primary_color": "red;}</style><script>alert(1)</script>"}}
        tenants.update_program(s, web.tenant_id, program.id, {"settings": settings})
    page = web.member().get("/portal/home").text
    assert "<script>alert" not in page and "--brand: #1f4e79" in page


def test_history_filters_and_csv(web: Web) -> None:
    client = web.member()
    page = client.get("/portal/history").text
    assert "+12,000" in page and "-2,500" in page
    only_redeem = client.get("/portal/history?kind=redeem").text
    assert "-2,500" in only_redeem and "+12,000" not in only_redeem
    exported = client.get("/portal/history.csv?kind=earn")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert sorted(int(r["amount"]) for r in rows) == [4_500, 12_000]
    assert all(r["kind"] == "earn" and r["unit"] == "tokens" for r in rows)


def test_a_member_sees_its_tree_and_nothing_else(web: Web) -> None:
    client = web.member()  # Grace, owner of Acme (dealer_west), which has the San Diego branch
    branch = web.demo.accounts["branch_sd"]
    assert client.get(f"/portal/home?account={branch}").status_code == 200
    for role in ("dealer_south", "distributor"):
        other = web.demo.accounts[role]
        for page in ("home", "history", "catalogue", "orders", "history.csv"):
            response = client.get(f"/portal/{page}?account={other}")
            assert response.status_code == 404, (role, page)
        assert "Bolt" not in client.get("/portal/home").text
    south_wallet = web.demo.wallets["dealer_south"]
    assert client.get(f"/portal/history?wallet={south_wallet}").status_code == 404
    assert client.get(f"/portal/history.csv?wallet={south_wallet}").status_code == 404
    with web.db.read() as s:
        reward = rewards.list_rewards(s, web.tenant_id, web.program())[0].id
    response: Any = post(client, f"/portal/catalogue/{reward}/redeem",
                         {"account": web.demo.accounts["dealer_south"]})
    assert response.status_code == 404
    with web.db.read() as s:
        assert not rewards.list_redemptions(s, web.tenant_id, web.program(),
                                            account_id=web.demo.accounts["dealer_south"])


def test_redeem_drops_stock_and_shows_in_orders_and_queue(web: Web) -> None:
    client = web.member()
    with web.db.read() as s:
        reward = next(r for r in rewards.list_rewards(s, web.tenant_id, web.program())
                      if r.code == "headset")
        reward_id, stock = reward.id, reward.stock
    page = client.get("/portal/catalogue").text
    assert "Wireless headset" in page and "You can afford this." in page
    assert "You need 26,000 more." in page  # the trip costs 40,000
    response: Any = post(client, f"/portal/catalogue/{reward_id}/redeem", {})
    orders = client.get(response.headers["location"]).text
    assert "waits for approval" in orders and "Wireless headset" in orders
    with web.db.read() as s:
        assert rewards.get_reward(s, web.tenant_id, reward_id).stock == (stock or 0) - 1
    assert "Wireless headset" in web.admin().get("/admin/redemptions").text
    assert "3,000 reserved" in client.get("/portal/home").text


def test_a_viewer_may_look_but_not_redeem(web: Web) -> None:
    with web.db.transaction() as s:
        user = members.add_user(s, web.tenant_id, web.demo.accounts["dealer_west"],
                                name="Val Viewer", email="val@acme.example", role="viewer",
                                actor="test")
        operators.portal.set_password(s, web.tenant_id, user.id, "viewer password ok",
                                      actor="test")
    client = web.sign_in("portal", "val@acme.example", "viewer password ok")
    assert "may look but not redeem" in client.get("/portal/catalogue").text
    with web.db.read() as s:
        reward = rewards.list_rewards(s, web.tenant_id, web.program())[0].id
    response: Any = post(client, f"/portal/catalogue/{reward}/redeem", {})
    assert "may not spend" in client.get(response.headers["location"]).text


def test_portal_sign_out(web: Web) -> None:
    client = web.member()
    post(client, "/portal/sign-out")
    assert client.get("/portal/home", follow_redirects=False).status_code == 303


def _user(web: Web, email: str) -> str:
    with web.db.transaction() as s:
        user = next(u for u in s.query(members.User).filter(members.User.email == email))
        operators.portal.set_password(s, web.tenant_id, user.id, "a portal password",
                                      actor="test")
        return user.id


def test_roles_narrow_the_tree(web: Web) -> None:
    """The members feature's view rules: a manager sees its account, not the ones below; a
    rep only its own wallet."""
    _user(web, "omar@northwind.example")  # manager of the distributor
    manager = web.sign_in("portal", "omar@northwind.example", "a portal password")
    west = web.demo.accounts["dealer_west"]
    assert manager.get(f"/portal/home?account={west}").status_code == 404
    assert manager.get("/portal/home").status_code == 200
    tom = _user(web, "tom@acme.example")  # rep of dealer_west
    with web.db.transaction() as s:
        wallet = ledger.wallet(s, web.tenant_id, web.program(),
                               tenants.unit_by_code(s, web.tenant_id, web.program(),
                                                    "tokens").id, "user", tom).id
    rep = web.sign_in("portal", "tom@acme.example", "a portal password")
    page = rep.get("/portal/home").text
    assert f'data-wallet="{wallet}"' in page
    assert f'data-wallet="{web.demo.wallets["dealer_west"]}"' not in page
    assert rep.get(f"/portal/history?wallet={web.demo.wallets['dealer_west']}").status_code == 404
