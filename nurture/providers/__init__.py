"""Email providers: the transport interface, the outbox, a recorder, SendGrid."""
