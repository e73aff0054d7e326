"""The audience: subscribers, consent records, tags, import, export and erasure."""
