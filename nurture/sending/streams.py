"""What a stream name means.

Every delivery belongs to a stream: a series' campaign slug, or `newsletter:<id>` for
a stored newsletter. The name travels in the delivery row, the unsubscribe token and
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
