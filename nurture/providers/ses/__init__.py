"""Amazon SES: the transport (SES v2 SendEmail), its event records, SNS signatures and the SQS queue."""
