"""Post N transfers with django-hordak's ``Account.transfer_to``, one transaction each, and
print a JSON line: ``{"transfers", "seconds", "balanced", "detail"}``.

Run by ``bench/ledger.py`` in a subprocess on a fresh PostgreSQL database (Django's setup stays
out of the benchmark's process)::

    DJANGO_SETTINGS_MODULE=bench.hordak_app.settings HORDAK_BENCH_DATABASE_URL=postgresql://… \
        python -m bench.hordak_app.run --transfers 20000 --accounts 10000
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, required=True)
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="concurrent callers, each transfer in its own transaction")
    args = parser.parse_args()

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Sum
    from djmoney.money import Money
    from hordak.models import Account, AccountType, Leg

    call_command("migrate", verbosity=0, interactive=False)
    # Setup (not timed): the program's "issued" account and the member wallets, as in the
    # allegiance benchmark (issued → wallet, one transfer per earn event).
    issued = Account.objects.create(name="issued", type=AccountType.expense, currencies=["EUR"])
    wallets = [
        Account.objects.create(name=f"member-{i}", type=AccountType.liability, currencies=["EUR"])
        for i in range(args.accounts)
    ]
    rng = random.Random(args.seed)  # the same plan as the allegiance run's single entries
    plan = [(rng.randrange(args.accounts), rng.randint(1, 1000)) for _ in range(args.transfers)]
    # Warm-up (not timed), as for allegiance: a first thousand transfers, then ANALYZE, so the
    # foreign-key checks of hordak_leg do not keep a plan made for an empty table.
    warm_rng = random.Random(args.seed + 2)
    warm = [(warm_rng.randrange(args.accounts), warm_rng.randint(1, 1000)) for _ in range(1000)]
    with transaction.atomic():
        for w, amount in warm:
            wallets[w].transfer_to(issued, Money(amount, "EUR"), description="warm-up")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    def transfer(share: list[tuple[int, int]]) -> None:
        try:
            for w, amount in share:
                with transaction.atomic():
                    # credits the wallet, debits issued
                    wallets[w].transfer_to(issued, Money(amount, "EUR"), description="earn")
        finally:
            if threading.current_thread() is not threading.main_thread():
                connection.close()  # each thread has its own Django connection

    start = time.perf_counter()
    if args.threads <= 1:
        transfer(plan)
    else:
        threads = [threading.Thread(target=transfer, args=(plan[k::args.threads],))
                   for k in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seconds = time.perf_counter() - start

    total = sum(amount for _, amount in [*warm, *plan])
    debits = Leg.objects.aggregate(s=Sum("debit"))["s"]
    credits = Leg.objects.aggregate(s=Sum("credit"))["s"]
    legs = Leg.objects.count()
    balanced = debits == credits == total and legs == 2 * (len(plan) + len(warm))
    print(json.dumps({
        "transfers": len(plan), "seconds": seconds, "balanced": balanced,
        "detail": f"{legs} legs, debits {debits}, credits {credits}, posted {total}",
    }))


if __name__ == "__main__":
    main()
