"""Staying in the inbox: what `nurture doctor` (and the console's Inbox page) checks."""

DEFAULT_TIMEOUT = 5.0  # seconds for each DNS look-up (all retries included) or web request
