"""Versioned series: the published versions and what changed between two, drafts, the publish
plan and carrying it out, enrollments, and the owner's switches (start, pause, resume).

Below the App (which holds the SeriesCatalog): functions here take a SeriesStore, what they
need of it, and never import nurture.app.
"""
