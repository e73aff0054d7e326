"""Sending: planning (windows, cap), claims, the pass and its outcomes, deliveries, streams, one email now."""
