"""Encryption at rest: day files written as sealed age segments and read back
transparently with an identity; no plaintext of a message on disk."""
