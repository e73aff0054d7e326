"""Sending: planning (windows, cap), claims, the pass, deliveries, streams, the daemon."""
