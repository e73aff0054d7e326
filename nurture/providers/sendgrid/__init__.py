"""SendGrid: the Mail Send transport and the signed Event Webhook's events."""
