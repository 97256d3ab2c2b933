"""The reader's own opener of X25519 age files (dead_drop_logger/crypt/stream.py),
against files written by Debian's ``age`` command, not by the code under test:

- every size around the 64 KiB chunk boundaries, several recipients and grease-free
  multi-stanza headers, an identity file of several keys: the exact plaintext, by the
  fast path (not pyrage's fallback);
- a byte changed anywhere in the header or payload, the final chunk cut off, bytes
  appended, chunks swapped: refused (Damaged), never a wrong plaintext;
- what it does not read (another key's file, an armored file, a passphrase): handed to
  pyrage by ``keys.decrypt``, which reads it or says why not.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import age_identity

from dead_drop_logger.crypt import keys, stream

CHUNK = 64 * 1024
SIZES = [0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17, 1 << 20]


def new_key(folder: Path, name: str) -> tuple[Path, str]:
    key = folder / name
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(
        ["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    return key, recipient


def age_encrypt(data: bytes, *args: str) -> bytes:
    done = subprocess.run(["age", "-e", *args], input=data, capture_output=True, check=True)
    return done.stdout


def fast_keys(identity: Path) -> list[stream.Key]:
    keys.use_identity(identity)
    try:
        found = stream.keys_of(keys.identities())
    finally:
        keys.use_identity(None)
    assert found
    return found


@pytest.mark.parametrize("size", SIZES)
def test_files_of_debian_age_open_to_their_plaintext(size: int) -> None:
    identity, recipient = age_identity()
    data = os.urandom(size)
    sealed = age_encrypt(data, "-r", recipient)
    assert stream.open_age(sealed, fast_keys(identity)) == data


def test_several_recipients_and_an_identity_file_of_several_keys(tmp_path: Path) -> None:
    first, first_recipient = new_key(tmp_path, "a.txt")
    second, second_recipient = new_key(tmp_path, "b.txt")
    other, other_recipient = new_key(tmp_path, "c.txt")
    both = tmp_path / "both.txt"
    both.write_bytes(other.read_bytes() + second.read_bytes())  # ours is the 2nd line
    data = b'{"id":1,"content":"x"}\n' * 5000
    sealed = age_encrypt(data, "-r", first_recipient, "-r", second_recipient)
    assert stream.open_age(sealed, fast_keys(first)) == data
    assert stream.open_age(sealed, fast_keys(second)) == data
    assert stream.open_age(sealed, fast_keys(both)) == data
    assert stream.open_age(sealed, fast_keys(other)) is None  # not ours: pyrage's turn
    assert other_recipient


def damaged_copies(sealed: bytes) -> dict[str, bytes]:
    payload = sealed.index(b"\n", sealed.index(b"\n--- ") + 1) + 1
    step = CHUNK + 16
    first, second = payload + 16, payload + 16 + step
    flip = bytearray(sealed)
    flip[-1] ^= 1
    mac = bytearray(sealed)
    mac[payload - 3] = ord("A") if mac[payload - 3] != ord("A") else ord("B")
    head = bytearray(sealed)
    head[len(b"age-encryption.org/v1\n-> X25519 ") + 3] ^= 0x02
    nonce = bytearray(sealed)
    nonce[payload + 2] ^= 1
    swapped = sealed[:first] + sealed[second : second + step] + sealed[first:second]
    swapped += sealed[second + step :]
    return {
        "last byte": bytes(flip),
        "mac": bytes(mac),
        "stanza": bytes(head),
        "payload nonce": bytes(nonce),
        "final chunk cut off": sealed[: payload + 16 + 2 * step],
        "bytes appended": sealed + b"\x00" * 16,
        "chunks swapped": swapped,
        "cut mid-chunk": sealed[:-100],
    }


@pytest.mark.parametrize(
    "how",
    [
        "last byte",
        "mac",
        "stanza",
        "payload nonce",
        "final chunk cut off",
        "bytes appended",
        "chunks swapped",
        "cut mid-chunk",
    ],
)
def test_a_damaged_file_is_refused(how: str) -> None:
    identity, recipient = age_identity()
    sealed = age_encrypt(os.urandom(3 * CHUNK + 500), "-r", recipient)
    bad = damaged_copies(sealed)[how]
    assert bad != sealed
    # Debian's age refuses it too (the reference), and so do we, through either path
    done = subprocess.run(["age", "-d", "-i", str(identity)], input=bad, capture_output=True)
    assert done.returncode != 0
    try:
        opened = stream.open_age(bad, fast_keys(identity))
    except stream.Damaged:
        opened = None
    else:  # only a header it cannot read at all is handed on (to pyrage, which refuses)
        assert opened is None and how == "stanza"
    keys.use_identity(identity)
    try:
        with pytest.raises(keys.CryptError):
            keys.decrypt(bad, Path("bad.age"))
    finally:
        keys.use_identity(None)


def test_what_it_does_not_read_goes_to_pyrage(tmp_path: Path) -> None:
    identity, recipient = age_identity()
    data = b"line\n" * 1000
    armored = age_encrypt(data, "-a", "-r", recipient)
    assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert stream.open_age(armored, fast_keys(identity)) is None
    other, _ = new_key(tmp_path, "other.txt")
    keys.use_identity(identity)
    try:
        assert keys.decrypt(armored, Path("x.age")) == data  # pyrage reads it
    finally:
        keys.use_identity(None)
    keys.use_identity(other)
    try:
        with pytest.raises(keys.CryptError, match="with the identity given"):
            keys.decrypt(age_encrypt(data, "-r", recipient), Path("x.age"))
    finally:
        keys.use_identity(None)
