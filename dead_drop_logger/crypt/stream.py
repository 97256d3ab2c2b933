"""A fast opener of age files sealed to X25519 recipients: the reader's hot path.

Why: every byte an encrypted ``search`` reads must be decrypted first, and pyrage
(the Rust ``age`` crate) decrypts at about a sixth of the speed of the ChaCha20-Poly1305
of the ``cryptography`` package (OpenSSL), holding the interpreter meanwhile: that was
most of an encrypted search's time. So a segment sealed to an X25519 recipient (all the
logger writes with ``age1...`` recipients) is opened here, following the age v1 spec
(C2SP age) to the letter:

- the header (``age-encryption.org/v1``, its stanzas, ``--- MAC``) is parsed; the file
  key is unwrapped from an ``X25519`` stanza with the identity's secret (X25519 with
  the stanza's ephemeral share, HKDF-SHA-256 salted with the share and our recipient,
  ChaCha20-Poly1305 with a zero nonce); the header's HMAC-SHA-256 is checked;
- the payload is the STREAM construction: a 16-byte nonce, the payload key derived
  from it and the file key (HKDF, ``payload``), then 64 KiB chunks each sealed with
  ChaCha20-Poly1305 under the nonce ``counter (11 bytes, big-endian) || last flag``;
  the last chunk (flag 1) may be full, and is empty only in an empty file. A file cut
  at a chunk boundary, reordered, or with a byte changed fails its tags.

Anything else (an ssh identity, no stanza our keys open, an armored file or another
version, ``cryptography`` not installed) returns None and the caller asks pyrage, which
reads every kind of age file and words the errors. A file our keys open but whose MAC or
tags are wrong raises :class:`Damaged`: it is damaged, and pyrage would say the same;
so does an X25519 stanza the spec says to reject (malformed, or a low-order share), and
a v1 header that breaks the spec's grammar (every reader must refuse it).
Tested against files written by Debian's ``age`` (tests/test_encryption_stream.py) and
the C2SP CCTV age vectors (tests/test_age_vectors.py).
Nothing here writes anything anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence
from typing import Any

VERSION = b"age-encryption.org/v1\n"
CHUNK = 64 * 1024
TAG = 16
NONCE = 16
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
X25519_INFO = b"age-encryption.org/v1/X25519"


class Damaged(Exception):
    """The file is meant for our key but does not authenticate (damaged or forged)."""


def available() -> bool:
    try:
        import cryptography.hazmat.primitives.ciphers.aead  # noqa: F401
    except ImportError:
        return False
    return True


def _bech32_payload(text: str) -> bytes:
    """The bytes of a bech32 string (its checksum already checked by pyrage's parser)."""
    data = text.lower().rpartition("1")[2][:-6]
    acc = bits = 0
    out = bytearray()
    for char in data:
        acc = (acc << 5) | _BECH32.index(char)
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return bytes(out)


class Key:
    """An X25519 identity ready to unwrap file keys: its secret and its recipient."""

    def __init__(self, secret_key: str) -> None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        self.private = X25519PrivateKey.from_private_bytes(_bech32_payload(secret_key))
        self.public = self.private.public_key().public_bytes_raw()


def keys_of(identities: Sequence[Any]) -> list[Key]:
    """The X25519 identities among pyrage's parsed ones (ssh ones are left to pyrage)."""
    found = []
    for identity in identities:
        text = str(identity)
        if text.startswith("AGE-SECRET-KEY-1"):
            found.append(Key(text))
    return found


def _b64(text: bytes) -> bytes:
    """age's base64: standard alphabet, no padding, canonical (its unused bits zero, as
    Go's strict decoder wants); raises ValueError on anything else."""
    if text.endswith(b"="):
        raise ValueError("padded base64")
    raw = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    if base64.b64encode(raw).rstrip(b"=") != text:
        raise ValueError("non-canonical base64")
    return raw


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _argument(arg: bytes) -> bool:
    """age's stanza argument: ``1*VCHAR`` (printable ASCII, no space)."""
    return bool(arg) and all(0x21 <= byte <= 0x7E for byte in arg)


def _header(data: bytes) -> tuple[list[tuple[list[bytes], bytes]], bytes, bytes, int] | None:
    """(stanzas as (args, body), the MAC, the bytes it covers, where the payload
    starts); None if ``data`` is not a binary v1 age file (armored, another version:
    pyrage's to read). Raises Damaged if it is one whose header breaks the v1 grammar
    (C2SP age, "ABNF definition of file header"): every reader must refuse it, and
    pyrage 1.4.0 opens some such headers (a stanza without its final body line)."""
    if not data.startswith(VERSION):
        return None
    pos = len(VERSION)
    stanzas: list[tuple[list[bytes], bytes]] = []
    try:
        while True:
            end = data.index(b"\n", pos)
            line = data[pos:end]
            if line.startswith(b"---"):  # end = "--- " 43base64char LF
                if not stanzas or not line.startswith(b"--- ") or len(line) != 4 + 43:
                    raise ValueError("a malformed MAC line")
                return stanzas, _b64(line[4:]), data[: pos + 3], end + 1
            if not line.startswith(b"-> "):
                raise ValueError("a line that is neither a stanza nor the MAC")
            args = line[3:].split(b" ")  # arg-line = "-> " argument *(SP argument) LF
            if not all(_argument(arg) for arg in args):
                raise ValueError("a malformed stanza argument")
            pos = end + 1
            body = []
            while True:  # body lines of 64 columns, the last one shorter (maybe empty)
                end = data.index(b"\n", pos)
                line = data[pos:end]
                pos = end + 1
                if len(line) > 64:
                    raise ValueError("a stanza body line longer than 64 columns")
                body.append(line)
                if len(line) < 64:
                    break
            stanzas.append((args, _b64(b"".join(body))))
    except (ValueError, binascii.Error):
        raise Damaged("its header is malformed") from None


def _file_key(stanzas: list[tuple[list[bytes], bytes]], keys: Sequence[Key]) -> bytes | None:
    """The file key from the first X25519 stanza one of ``keys`` opens (None: none does).

    As the spec (C2SP age, "X25519 recipient stanza") and Go's age have it: a stanza of
    another type is ignored; an X25519 stanza met before ours that is malformed (not two
    arguments, a share that is not the canonical base64 of 32 bytes, a body that is not
    32 bytes) or whose share gives the all-zero secret (a low-order point) is rejected:
    Damaged, the whole file refused, never skipped for a later stanza."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    for args, body in stanzas:
        if args[0] != b"X25519":
            continue
        if len(args) != 2:
            raise Damaged("an X25519 stanza of its header is malformed")
        try:
            share = _b64(args[1])
        except (ValueError, binascii.Error):
            raise Damaged("an X25519 stanza of its header is malformed") from None
        if len(share) != 32 or len(body) != 32:  # body: checked before any decryption
            raise Damaged("an X25519 stanza of its header is malformed")
        for key in keys:
            try:  # OpenSSL refuses the all-zero secret itself (ValueError)
                shared = key.private.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                shared = bytes(32)
            if shared == bytes(32):
                raise Damaged("an X25519 stanza of its header has a low-order share")
            wrap = _hkdf(shared, share + key.public, X25519_INFO)
            try:
                return ChaCha20Poly1305(wrap).decrypt(bytes(12), body, None)
            except InvalidTag:
                continue
    return None


def open_age(data: bytes, keys: Sequence[Key]) -> bytes | None:
    """The plaintext of the age file ``data`` if one of ``keys`` opens it (None: not
    for these keys, or not a kind of file read here). Raises Damaged."""
    if not keys:
        return None
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    header = _header(data)
    if header is None:
        return None
    stanzas, mac, covered, start = header
    file_key = _file_key(stanzas, keys)
    if file_key is None:
        return None
    expected = hmac.digest(_hkdf(file_key, b"", b"header"), covered, "sha256")
    if not hmac.compare_digest(expected, mac):
        raise Damaged("its header MAC is wrong")
    if len(data) < start + NONCE + TAG:
        raise Damaged("its payload is cut short")
    nonce = data[start : start + NONCE]
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    payload = memoryview(data)[start + NONCE :]
    step = CHUNK + TAG
    count = -(-len(payload) // step)
    parts = []
    try:
        for index in range(count):
            piece = payload[index * step : (index + 1) * step]
            last = index == count - 1
            if last and len(piece) == TAG and index:
                raise Damaged("it ends in an empty chunk")
            chunk_nonce = index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
            parts.append(aead.decrypt(chunk_nonce, piece, None))
    except InvalidTag:
        raise Damaged(f"chunk {index} does not authenticate (damaged or cut short)") from None
    return b"".join(parts)
