"""Notifications and webhooks: rules that match committed lines and deliver them at least
once, with a durable position per rule in the log directory."""
