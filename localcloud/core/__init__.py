"""What the local services share: the HTTP server, account and keys, durable writes."""
