"""nurture: an email nurture and newsletter pipeline for a small KAP practice."""

__version__ = "0.1.0"
