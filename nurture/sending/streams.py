"""What a stream name means.

Every delivery belongs to a stream: a series' campaign slug, `newsletter:<id>` for
a stored newsletter, or `repermission:ask` for the re-permission emails (sunset:).
The name travels in the delivery row, the unsubscribe token and
the provider's custom args, so it is built and read only here.
"""

from __future__ import annotations

NEWSLETTER_PREFIX = "newsletter:"
# The stream of a test copy sent to the owner: a newsletter's, but of no stored newsletter.
# A newsletter is one email: every delivery of it has this step key.
NEWSLETTER_STEP_KEY = "newsletter"


def newsletter_stream(newsletter_id: int) -> str:
    """The stream name of stored newsletter `newsletter_id`."""
    return f"{NEWSLETTER_PREFIX}{newsletter_id}"


def is_newsletter_stream(stream: str) -> bool:
    """Whether `stream` names a newsletter (a stored one or a test copy), not a series."""
    return stream.startswith(NEWSLETTER_PREFIX)


# The re-permission email to a quiet reader: one stream, one step key per round of asking,
# so each round's email goes out at most once. A slug never holds ":", so no series is named so.
REPERMISSION_STREAM = "repermission:ask"


def ask_step_key(round_number: int) -> str:
    return f"ask-{round_number}"


def is_repermission_stream(stream: str) -> bool:
    return stream == REPERMISSION_STREAM


# The delivery probe's stream (nurture.sending.probe): an email to the practice's own
# address, kept as a delivery row so its events can vouch for the webhook; never in stats.
PROBE_STREAM = "probe:delivery-check"
