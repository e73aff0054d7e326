"""SMTP relays: the transport (pooled smtplib connections) and RFC 3464 bounce mail."""
