"""``ledger_aging`` kept set-based by a writer of many postings (part of the repository).

The trigger on ``posting`` (migrations ``0018_aging`` … ``0025_agingfast``) keeps a wallet's
credits, debits and remaining per day one posting at a time: several planned statements per
posting, the largest cost of a batch of earnings. A writer of many postings pauses it for its
own postings (migration ``0024_expiry``: visible to its transaction only) and keeps the same
rows itself: the batch's postings summed per (wallet, day), one upsert, and the full
recomputation of ``remaining`` only for the wallets the trigger would have recomputed. The
rows are then exactly the trigger's (``ledger.recompute_aging`` gives them from the postings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from allegiance.kit.db import driver_connection

# The trigger paused for this transaction's own postings, then resumed (0024_expiry): on
# PostgreSQL a transaction-local setting, on SQLite a row of ``sequence`` the writer adds and
# removes in its own transaction (one writer at a time). A rolled-back savepoint undoes either.
_PAUSE: dict[bool, dict[bool, str]] = {
    True: {True: "INSERT INTO sequence (tenant_id, name, last_value, last_hash) "
                 "VALUES (?, 'aging_paused', 0, '')",
           False: "DELETE FROM sequence WHERE tenant_id = ? AND name = 'aging_paused'"},
    False: {True: "SELECT set_config('allegiance.aging_paused', 'on', true), %s",
            False: "SELECT set_config('allegiance.aging_paused', 'off', true), %s"},
}

# Each wallet's newest day and balance before the batch.
_BEFORE = {
    True: "SELECT account_id, max(day), sum(credits - debits) FROM ledger_aging "
          "WHERE tenant_id = ? AND account_id IN (SELECT value FROM json_each(?)) "
          "GROUP BY account_id",
    False: "SELECT account_id, max(day), sum(credits - debits) FROM ledger_aging "
           "WHERE tenant_id = %s AND account_id = ANY(%b) GROUP BY account_id",
}
_UPSERT = (
    "INSERT INTO ledger_aging AS g (tenant_id, account_id, day, credits, debits, remaining) "
    "{values} ON CONFLICT (tenant_id, account_id, day) DO UPDATE "
    "SET credits = g.credits + excluded.credits, debits = g.debits + excluded.debits, "
    "remaining = g.remaining + excluded.remaining"
)
_ADD = {
    True: _UPSERT.format(values="SELECT ?, j.value ->> 0, j.value ->> 1, j.value ->> 2, "
                                "j.value ->> 3, j.value ->> 4 FROM json_each(?) AS j WHERE true"),
    False: _UPSERT.format(values="SELECT %s, * FROM unnest(%b::text[], %b::bigint[], "
                                 "%b::bigint[], %b::bigint[], %b::bigint[])"),
}
# What the trigger does for a posting that is not a plain newest-day credit, for many wallets
# at once: the part of the balance each day's credits make up, newest first.
_REMAINING = (
    "UPDATE ledger_aging SET remaining = r.part FROM ("
    "SELECT account_id, day, {part} AS part FROM ("
    "SELECT account_id, day, credits, "
    "SUM(credits - debits) OVER (PARTITION BY account_id) AS bal, "
    "SUM(credits) OVER (PARTITION BY account_id ORDER BY day DESC "
    "ROWS UNBOUNDED PRECEDING) AS newer "
    "FROM ledger_aging WHERE tenant_id = {m} AND account_id IN ({wallets})) w) AS r "
    "WHERE ledger_aging.tenant_id = {m} AND ledger_aging.account_id = r.account_id "
    "AND ledger_aging.day = r.day AND ledger_aging.remaining <> r.part"
)
_RECOMPUTE = {
    True: _REMAINING.format(part="max(0, min(credits, bal - (newer - credits)))", m="?",
                            wallets="SELECT value FROM json_each(?)"),
    False: _REMAINING.format(part="GREATEST(0, LEAST(credits, bal - (newer - credits)))",
                             m="%s", wallets="SELECT unnest(%b::text[])"),
}

# (wallet id, day number) → [credits, debits] of a batch's member-wallet postings
Moves = Mapping[tuple[str, int], Sequence[int]]


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def pause(session: Session, tenant_id: str, paused: bool) -> None:
    """Pause (``True``) or resume the aging trigger for this transaction's postings."""
    with driver_connection(session) as conn:
        conn.execute(_PAUSE[_sqlite(session)][paused], (tenant_id,))


def recompute_remaining(session: Session, tenant_id: str, wallets: Sequence[str]) -> None:
    """Recompute ``remaining`` of every day of these wallets from their credits and debits."""
    if not wallets:
        return
    sqlite = _sqlite(session)
    listed = json.dumps(list(wallets)) if sqlite else list(wallets)
    with driver_connection(session) as conn:
        conn.execute(_RECOMPUTE[sqlite], (tenant_id, listed, tenant_id))


def add(session: Session, tenant_id: str, moves: Moves) -> None:
    """Add a batch's member-wallet postings (written while the trigger was paused) to
    ``ledger_aging``, as the trigger would have, posting by posting.

    A wallet whose postings in the batch are all credits on or after its newest day, while its
    balance is not below zero, only adds each credit to its day's ``remaining`` (the newest
    credits make up the balance); any other wallet (a debit, a back-dated credit, a credit
    that pays a debt) gets its days' ``remaining`` recomputed, which is what the trigger ends
    with after each such posting. The caller holds the wallets' counter rows (the batch's
    counter update locked them), so no other writer changes their aging meanwhile."""
    if not moves:
        return
    sqlite = _sqlite(session)
    wallets = sorted({wallet for wallet, _ in moves})
    with driver_connection(session) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(_BEFORE[sqlite], (tenant_id, json.dumps(wallets) if sqlite else wallets))
            before = {str(w): (int(day), int(bal)) for w, day, bal in cursor.fetchall()}
        finally:
            cursor.close()
    adds_only = dict.fromkeys(wallets, True)
    for (wallet, day), (_, debits) in moves.items():
        newest, balance = before.get(wallet, (day, 0))
        if debits or day < newest or balance < 0:
            adds_only[wallet] = False
    rows = [(wallet, day, credits, debits, credits if adds_only[wallet] else 0)
            for (wallet, day), (credits, debits) in sorted(moves.items())]
    with driver_connection(session) as conn:
        if sqlite:
            conn.execute(_ADD[True], (tenant_id, json.dumps(rows)))
        else:
            conn.execute(_ADD[False], (tenant_id, *([list(c) for c in zip(*rows, strict=True)])))
    recompute_remaining(session, tenant_id, [w for w in wallets if not adds_only[w]])


# --- PostgreSQL: many aging rows changed in one statement, their liability sums with it ------
# ``liability_aging_track`` (0026_analytics) appends one ``liability_delta`` row per changed
# aging row, a PL/pgSQL call each. A writer that changes a chunk's aging rows in one statement
# pauses it (0035_expirypause: ``allegiance.liability_paused``, transaction-local) and appends
# the same sums grouped per (program, unit, tier, day), in the same statement. The tier is the
# trigger's: the member's enrolment tier in the wallet's program, '' when none.
_PG_LIABILITY_PAUSE = "SELECT set_config('allegiance.liability_paused', %s, true)"
_PG_TIER = (
    "COALESCE((SELECT en.tier FROM enrolment en WHERE en.tenant_id = a.tenant_id "
    "AND en.program_id = a.program_id AND en.account_id = CASE WHEN a.owner_type = 'account' "
    "THEN a.owner_id ELSE (SELECT u.account_id FROM member_user u WHERE u.tenant_id = "
    "a.tenant_id AND u.id = a.owner_id) END), '')"
)
_PG_DELTAS = (
    "INSERT INTO liability_delta (tenant_id, program_id, unit_id, tier, day, remaining, net) "
    "SELECT t, p, u, tier, day, SUM(dr), SUM(dn) FROM ("
    f"SELECT a.tenant_id AS t, a.program_id AS p, a.unit_id AS u, {_PG_TIER} AS tier, "
    "c.day, c.dr, c.dn FROM {changes} c JOIN ledger_account a "
    "ON a.tenant_id = %s AND a.id = c.account_id) x "
    "GROUP BY t, p, u, tier, day HAVING SUM(dr) <> 0 OR SUM(dn) <> 0"
)
# The wallets' debits added to one day: net −d, remaining unchanged (a new row has none).
_PG_DEBITS = (
    "WITH v AS (SELECT * FROM unnest(%b::text[], %b::bigint[]) AS v(account_id, d)), "
    "up AS (INSERT INTO ledger_aging AS g (tenant_id, account_id, day, credits, debits, "
    "remaining) SELECT %s, account_id, %s, 0, d, 0 FROM v "
    "ON CONFLICT (tenant_id, account_id, day) DO UPDATE SET debits = g.debits + excluded.debits) "
    + _PG_DELTAS.replace("{changes}", "(SELECT account_id, %s::bigint AS day, 0 AS dr, "
                                      "-d AS dn FROM v)")
)
# The wallets' remaining per day recomputed (the trigger's window), each change's difference.
_PG_REMAINING = (
    "WITH r AS (SELECT account_id, day, remaining AS old, "
    "GREATEST(0, LEAST(credits, bal - (newer - credits))) AS part FROM ("
    "SELECT account_id, day, credits, remaining, "
    "SUM(credits - debits) OVER (PARTITION BY account_id) AS bal, "
    "SUM(credits) OVER (PARTITION BY account_id ORDER BY day DESC "
    "ROWS UNBOUNDED PRECEDING) AS newer "
    "FROM ledger_aging WHERE tenant_id = %s AND account_id = ANY(%b::text[])) w), "
    "ch AS (UPDATE ledger_aging g SET remaining = r.part FROM r WHERE g.tenant_id = %s "
    "AND g.account_id = r.account_id AND g.day = r.day AND g.remaining <> r.part "
    "RETURNING g.account_id, g.day, r.part - r.old AS dr, 0 AS dn) "
    + _PG_DELTAS.replace("{changes}", "ch")
)


def debit_day_postgres(session: Session, tenant_id: str, day: int,
                       debits: Mapping[str, int]) -> None:
    """PostgreSQL: add each wallet's debit to its aging row of ``day`` (the posting trigger
    paused for the postings behind them) and recompute the wallets' remaining per day — the
    rows the trigger would have left — with their ``liability_delta`` sums, two statements in
    all. The caller holds the wallets' counter rows (no other writer changes their aging)."""
    wallets = sorted(debits)
    if not wallets:
        return
    with driver_connection(session) as conn, conn.cursor() as cursor:
        cursor.execute(_PG_LIABILITY_PAUSE, ("on",))
        cursor.execute(_PG_DEBITS, (wallets, [debits[w] for w in wallets], tenant_id, day, day,
                                    tenant_id))
        cursor.execute(_PG_REMAINING, (tenant_id, wallets, tenant_id, tenant_id))
        cursor.execute(_PG_LIABILITY_PAUSE, ("off",))
