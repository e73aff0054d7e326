"""The tables. The Alembic migrations must produce exactly this schema (a test proves it).

One module a domain, each importing only `base`: `audience` (subscribers, consent,
suppressions, re-permission), `series`, `newsletters`, `deliveries` (and provider
events), `owners` (the console's people and logins), `operations` (holds, passes,
notices, settings, rate schedules), `results` (the Results pages' summaries).
Importing this package defines every table on `Base.metadata`, which Alembic and the
schema test read; every name is re-exported here, so callers write `models.Delivery`.
"""

from nurture.store.models.audience import (
    SUBSCRIBER_STATUSES,
    AskOutcome,
    ConsentEvent,
    ConsentKind,
    ConsentWording,
    Frequency,
    RepermissionAsk,
    SignupAttempt,
    Subscriber,
    SubscriberStatus,
    SubscriberTag,
    SunsetReview,
    Suppression,
)
from nurture.store.models.base import NAMING, Base, Id, UtcDateTime
from nurture.store.models.deliveries import (
    BOUNCE_KINDS,
    EVENT_BITS,
    EVENT_KIND_BITS,
    LEGACY_EVENT_KINDS,
    Delivery,
    DeliveryStatus,
    EventKind,
    ProviderEvent,
)
from nurture.store.models.newsletters import Newsletter, NewsletterStatus, NewsletterZone
from nurture.store.models.operations import (
    HoldKind,
    OwnerNotice,
    RateSchedule,
    SavedSetting,
    SendingHold,
    SendPassRecord,
)
from nurture.store.models.owners import (
    LoginAttempt,
    LoginOutcome,
    Owner,
    OwnerAuditEntry,
    OwnerInvite,
    OwnerRecoveryCode,
    OwnerSession,
)
from nurture.store.models.results import ResultCount, ResultDay, ResultDayState, ResultSends
from nurture.store.models.series import CampaignState, Enrollment, EnrollmentStatus, SeriesVersion

__all__ = [
    "BOUNCE_KINDS",
    "LEGACY_EVENT_KINDS",
    "NAMING",
    "EVENT_BITS",
    "EVENT_KIND_BITS",
    "SUBSCRIBER_STATUSES",
    "AskOutcome",
    "Base",
    "CampaignState",
    "ConsentEvent",
    "ConsentKind",
    "ConsentWording",
    "Delivery",
    "DeliveryStatus",
    "Enrollment",
    "EnrollmentStatus",
    "EventKind",
    "Frequency",
    "HoldKind",
    "Id",
    "LoginAttempt",
    "LoginOutcome",
    "Newsletter",
    "NewsletterStatus",
    "NewsletterZone",
    "Owner",
    "OwnerAuditEntry",
    "OwnerInvite",
    "OwnerNotice",
    "OwnerRecoveryCode",
    "OwnerSession",
    "ProviderEvent",
    "RateSchedule",
    "RepermissionAsk",
    "ResultCount",
    "ResultDay",
    "ResultDayState",
    "ResultSends",
    "SavedSetting",
    "SendPassRecord",
    "SendingHold",
    "SeriesVersion",
    "SignupAttempt",
    "Subscriber",
    "SubscriberStatus",
    "SubscriberTag",
    "SunsetReview",
    "Suppression",
    "UtcDateTime",
]
