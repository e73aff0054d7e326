"""Versioned series: the published versions and what changed between two, drafts, the publish plan and its apply, enrollments, and the owner's switches (start, pause, resume)."""
