"""``ship``: committed lines delivered into other engines (NATS JetStream, PostgreSQL,
HTTP), exactly once at the sink by each line's ``(room, id)``."""
