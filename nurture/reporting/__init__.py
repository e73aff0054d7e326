"""Reporting: stats per email, the owner's HTML report and its charts, the weekly summary and alerts."""
