"""Encryption at rest: day files written as sealed age segments and read back
transparently with an identity; no plaintext of a message on disk.

Why age: a standard, small format (C2SP age) that the stock ``age -d -i KEY`` reads, so
the logs stay readable with no code of ours; recipients are public keys (``age1...``,
or ssh keys), so the logger needs no secret to write, and a stolen disk or backup holds
nothing readable. Why pyrage: a one-wheel binding of the Rust ``age`` crate with no
dependencies; it is an optional extra (``[encrypt]``) imported only when encryption is
configured or an encrypted file is read (:func:`.keys.age_module`).

An age file cannot be appended to, so a log is written in *segments*: each one a whole,
standard age file, written once. The modules: :mod:`.keys` (recipients, identities, the
age calls, ``is_encrypted``), :mod:`.segments` (writing, reading and re-sealing one
segment), :mod:`.stream` (the reader's fast opener of X25519 age files, with the
``cryptography`` package's ChaCha20-Poly1305).
"""
