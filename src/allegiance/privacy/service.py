"""Export and erasure of a member's personal data. Services flush; the caller commits.

Erasure pseudonymises: the account and its users keep their ids, member number, wallets and
ledger history (so balances, liability and the ledger's hash chain are untouched), while every
personal value — names, e-mails, tax id, attributes, external ids, applications, shipping
details, personal values in outbox payloads — is replaced or removed, and the account leaves
every segment at once (no refresh puts it back; leaving earns nothing). Its enrolments close
(reason ``erased``; no leavers' survey), and from then on it earns nothing and joins nothing:
events naming it are refused (``409 account_erased``) and so are enrolments, invitations,
claims, referral sign-ups and codes, survey answers and check-ins. The audit log never
holds personal values of members (``audit.record`` redacts them on the way in), so its hash
chain still verifies. One ``member.erased`` message goes to the outbox; erasing again is a
409, so it is sent once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, false, or_, select
from sqlalchemy.orm import Session

from allegiance import (
    audit,
    campaigns,
    engagement,
    events,
    ledger,
    members,
    referrals,
    rewards,
)
from allegiance.kit import clock, outbox
from allegiance.kit.models import OutboxMessage
from allegiance.privacy.domain import mentions, pseudonym, scrub
from allegiance.privacy.errors import AlreadyErased

ERASED_EVENT = "member.erased"
ERASED_REASON = "erased"  # the reason of the enrolment changes an erasure makes


def _row(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    table = obj.__table__
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.name in skip or column.name == "tenant_id":
            continue
        value = getattr(obj, column.key)
        out[column.name] = value.isoformat() if hasattr(value, "isoformat") else (
            str(value) if value is not None and not isinstance(
                value, (str, int, float, bool, dict, list)) else value)
    return out


def export_member(session: Session, tenant_id: str, account_id: str) -> dict[str, Any]:
    """Everything the engine holds about a member (an account and its users), as JSON."""
    account = members.get_account(session, tenant_id, account_id)
    users = list(session.scalars(select(members.User).where(
        members.User.tenant_id == tenant_id, members.User.account_id == account_id)))
    enrolments = list(session.scalars(select(members.Enrolment).where(
        members.Enrolment.tenant_id == tenant_id, members.Enrolment.account_id == account_id)))
    enrolment_ids = [e.id for e in enrolments]
    changes = list(session.scalars(select(members.EnrolmentChange).where(
        members.EnrolmentChange.tenant_id == tenant_id,
        members.EnrolmentChange.enrolment_id.in_(enrolment_ids)))) if enrolment_ids else []
    wallets = list(session.scalars(select(ledger.LedgerAccount).where(
        ledger.LedgerAccount.tenant_id == tenant_id,
        ledger.LedgerAccount.owner_id.in_([account_id, *[u.id for u in users]]))))
    redemptions = list(session.scalars(select(rewards.Redemption).where(
        rewards.Redemption.tenant_id == tenant_id,
        rewards.Redemption.account_id == account_id)))
    member_events = list(session.scalars(select(events.Event).where(
        events.Event.tenant_id == tenant_id, events.Event.account_id == account_id)
        .order_by(events.Event.occurred_at)))
    emails = {e for e in [account.email, *[u.email for u in users]] if e}
    invitations = list(session.scalars(select(members.Invitation).where(
        members.Invitation.tenant_id == tenant_id,
        or_(members.Invitation.account_id == account_id,
            _email_in(emails)))))
    external = list(session.scalars(select(members.AccountExternalId).where(
        members.AccountExternalId.tenant_id == tenant_id,
        members.AccountExternalId.account_id == account_id)))
    trail = list(session.scalars(select(audit.AuditRecord).where(
        audit.AuditRecord.tenant_id == tenant_id,
        audit.AuditRecord.object_id.in_([account_id, *[u.id for u in users], *enrolment_ids]))
        .order_by(audit.AuditRecord.seq)))
    return {
        "format": "allegiance.member-export/1",
        "exported_at": clock.now().isoformat(),
        "account": _row(account),
        "external_ids": [_row(x) for x in external],
        "users": [_row(u, skip=("password_hash",)) for u in users],
        "enrolments": [_row(e) for e in enrolments],
        "enrolment_changes": [_row(c) for c in changes],
        "invitations": [_row(i, skip=("token_hash",)) for i in invitations],
        "wallets": [{**_row(w, skip=("debits_posted", "credits_posted", "debits_pending",
                                     "credits_pending")),
                     "balance": asdict(ledger.balance_of(w))} for w in wallets],
        "redemptions": [_row(r) for r in redemptions],
        "events": [_row(e) for e in member_events],
        "audit": [{"seq": a.seq, "at": a.at.isoformat(), "actor": a.actor, "action": a.action,
                   "object_type": a.object_type, "object_id": a.object_id} for a in trail],
    }


@dataclass(frozen=True)
class ErasureReport:
    account_id: str
    users: int
    external_ids: int
    invitations: int
    redemptions: int
    events: int
    outbox_messages: int
    message_id: str
    other_rows: int = 0  # referral sign-ups and applications, survey answers, sponsors
    segments: int = 0  # the segments it left (campaigns.leave_all_segments)
    enrolments: int = 0  # the enrolments it closed (members.end_enrolments)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def erase_member(session: Session, tenant_id: str, account_id: str, *, actor: str,
                 reason: str) -> ErasureReport:
    """Pseudonymise a member everywhere; the ledger and the audit chain stay as they are."""
    account = members.get_account(session, tenant_id, account_id)
    if account.status == "erased":
        raise AlreadyErased("this member has already been erased", field="account_id")
    now = clock.now()
    users = list(session.scalars(select(members.User).where(
        members.User.tenant_id == tenant_id, members.User.account_id == account_id)))
    emails = {e for e in [account.email, *[u.email for u in users]] if e}
    ids = frozenset({account_id, *[u.id for u in users]})
    before_status = account.status

    account.name = pseudonym("Erased member", account.id)
    account.email = None
    account.tax_id = None
    account.attributes = {}
    account.status = "erased"
    account.updated_at = now
    for user in users:
        user.name = pseudonym("Erased user", user.id)
        user.email = None
        user.external_id = None
        user.password_hash = None
        user.status = "erased"
        user.updated_at = now
    external = len(session.scalars(select(members.AccountExternalId.external_id).where(
        members.AccountExternalId.tenant_id == tenant_id,
        members.AccountExternalId.account_id == account_id)).all())
    session.execute(delete(members.AccountExternalId).where(
        members.AccountExternalId.tenant_id == tenant_id,
        members.AccountExternalId.account_id == account_id))
    for enrolment in session.scalars(select(members.Enrolment).where(
            members.Enrolment.tenant_id == tenant_id,
            members.Enrolment.account_id == account_id)):
        enrolment.application = {}
    # every enrolment ends (closed, reason "erased": history, audit and the usual webhook);
    # the leavers' survey is never sent to an erased account (engagement.leavers)
    ended = members.end_enrolments(session, tenant_id, account_id, actor=actor,
                                   reason=ERASED_REASON)
    invitations = list(session.scalars(select(members.Invitation).where(
        members.Invitation.tenant_id == tenant_id,
        or_(members.Invitation.account_id == account_id,
            _email_in(emails)))))
    for invitation in invitations:
        invitation.email = f"erased-{invitation.id.lower()}@invalid"
    redemptions = list(session.scalars(select(rewards.Redemption).where(
        rewards.Redemption.tenant_id == tenant_id,
        rewards.Redemption.account_id == account_id)))
    for redemption in redemptions:
        redemption.shipping = {}
    member_events = list(session.scalars(select(events.Event).where(
        events.Event.tenant_id == tenant_id, events.Event.account_id == account_id)))
    for event in member_events:
        event.match_key = scrub(event.match_key, frozenset({*event.match_key}))
    others = _erase_in_features(session, tenant_id, account_id)
    messages = 0
    for message in session.scalars(select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant_id)):
        if mentions(message.payload, ids | emails):
            cleaned = scrub(message.payload)
            if emails:
                cleaned = _drop_values(cleaned, emails)
            if cleaned != message.payload:
                message.payload = cleaned
                messages += 1
    # out of every segment now, not at the next refresh (which never puts it back); leaving
    # is announced (segment.left) but records no segment_left activity: nothing is earned
    left = campaigns.leave_all_segments(session, tenant_id, account_id)
    session.flush()
    message_id = outbox.emit(session, tenant_id, ERASED_EVENT, {
        "account_id": account_id, "user_ids": sorted(ids - {account_id}),
        "erased_at": now.isoformat()})
    report = ErasureReport(account_id, len(users), external, len(invitations), len(redemptions),
                           len(member_events), messages, message_id, others, len(left),
                           len(ended))
    audit.record(session, tenant_id, actor=actor, action="account.erased",
                 object_type="account", object_id=account_id,
                 before={"status": before_status},
                 after={"status": "erased", "reason": reason, **report.as_dict()})
    session.flush()
    return report


def _erase_in_features(session: Session, tenant_id: str, account_id: str) -> int:
    """Personal values the member left in other features: the e-mail, tax id and device keys
    of its referral sign-ups (fraud checks), its affiliate applications, its free-text survey
    answers, and its name on event sponsorships. Returns the number of rows changed."""
    changed = 0
    for referral in session.scalars(select(referrals.Referral).where(
            referrals.Referral.tenant_id == tenant_id,
            referrals.Referral.referred_account_id == account_id)):
        referral.email_key = referral.tax_key = referral.device_hash = None
        changed += 1
        session.execute(delete(referrals.ReferralIdentity).where(
            referrals.ReferralIdentity.tenant_id == tenant_id,
            referrals.ReferralIdentity.referral_id == referral.id))
    for code in session.scalars(select(referrals.ReferralCode).where(
            referrals.ReferralCode.tenant_id == tenant_id,
            referrals.ReferralCode.account_id == account_id)):
        if code.application:
            code.application = {}
            changed += 1
    responses = list(session.scalars(select(engagement.SurveyResponse).where(
        engagement.SurveyResponse.tenant_id == tenant_id,
        engagement.SurveyResponse.account_id == account_id)))
    for response in responses:
        survey = session.get(engagement.Survey, (tenant_id, response.survey_id))
        texts = {q.get("code") for q in (survey.questions if survey else [])
                 if isinstance(q, dict) and q.get("kind") == "text"}
        answers = {k: ("[erased]" if k in texts else v) for k, v in response.answers.items()}
        if answers != response.answers:
            response.answers = answers
            changed += 1
    for sponsor in session.scalars(select(engagement.Sponsor).where(
            engagement.Sponsor.tenant_id == tenant_id,
            engagement.Sponsor.account_id == account_id)):
        sponsor.name = pseudonym("Erased member", account_id)
        sponsor.note = ""
        changed += 1
    return changed


def _email_in(emails: set[str]) -> ColumnElement[bool]:
    return members.Invitation.email.in_(sorted(emails)) if emails else false()


def _drop_values(value: Any, needles: set[str]) -> Any:
    if isinstance(value, str):
        return "[erased]" if value in needles else value
    if isinstance(value, dict):
        return {k: _drop_values(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_values(v, needles) for v in value]
    return value
