"""The reader's opener of age files (dead_drop_logger/crypt/stream.py) against the C2SP
CCTV age test vectors that apply to it: X25519, the header's grammar and MAC, and the
payload's STREAM chunks (tests/data/age-vectors/, rebuilt from CCTV's recipes by its
generate.py; the ``x25519`` one is byte for byte CCTV's published file).

For each vector:
- Debian's ``age`` (the reference) does what the vector expects: a success gives exactly
  the payload (its sha256), every failure exits non-zero;
- ``stream.open_age`` gives exactly the payload of a success, by the fast path; on a
  failure it never gives plaintext: it raises Damaged, or returns None so that pyrage
  decides;
- ``keys.decrypt`` (the whole path: the opener, then pyrage) gives the payload of a
  success and refuses every failure with CryptError, never another exception.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
from pathlib import Path

import pytest
from conftest import age_identity

from dead_drop_logger.crypt import keys, stream

VECTORS = Path(__file__).parent / "data" / "age-vectors"
NAMES = sorted(p.name for p in VECTORS.iterdir() if p.is_file() and p.suffix != ".py")
EXPECTS = {"success", "header failure", "payload failure", "no match", "HMAC failure"}


def load(name: str) -> tuple[dict[str, list[str]], bytes]:
    raw = (VECTORS / name).read_bytes()
    head, _, body = raw.partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        fields.setdefault(key, []).append(value)
    return fields, body


def test_the_vectors_are_there() -> None:
    assert len(NAMES) >= 60
    assert {load(name)[0]["expect"][0] for name in NAMES} == EXPECTS


@pytest.mark.parametrize("name", NAMES)
def test_debian_age_agrees_with_the_vector(name: str, tmp_path: Path) -> None:
    fields, data = load(name)
    identity = tmp_path / "identity.txt"
    identity.write_text("\n".join(fields["identity"]) + "\n") if "identity" in fields else None
    args = ["-i", str(identity)] if "identity" in fields else ["-i", "/dev/null"]
    done = subprocess.run(["age", "-d", *args], input=data, capture_output=True)
    if fields["expect"] == ["success"]:
        assert done.returncode == 0, done.stderr
        assert hashlib.sha256(done.stdout).hexdigest() == fields["payload"][0]
    else:
        assert done.returncode != 0


@pytest.mark.parametrize("name", NAMES)
def test_the_opener_meets_the_vector(name: str, tmp_path: Path) -> None:
    fields, data = load(name)
    found = [stream.Key(text) for text in fields.get("identity", [])]
    success = fields["expect"] == ["success"]
    try:
        opened = stream.open_age(data, found)
    except stream.Damaged:
        assert not success
        opened = None
    if success:
        assert opened is not None  # by the fast path, not pyrage's
        assert hashlib.sha256(opened).hexdigest() == fields["payload"][0]
    else:
        assert opened is None
    # the whole path: the opener, then pyrage for what it hands on
    identity = tmp_path / "identity.txt"
    identity.write_text("\n".join(fields.get("identity", [])) + "\n")
    if not found:
        return  # (the empty file: no identity to read it with)
    keys.use_identity(identity)
    try:
        if success:
            plain = keys.decrypt(data, Path(name))
            assert hashlib.sha256(plain).hexdigest() == fields["payload"][0]
        else:
            with pytest.raises(keys.CryptError):
                keys.decrypt(data, Path(name))
    finally:
        keys.use_identity(None)


def test_no_changed_file_is_opened_nor_lets_out_another_error(tmp_path: Path) -> None:
    """A file of Debian's ``age`` (to two recipients, ours second; two chunks) changed in
    2,000 seeded ways, mostly in its header (a bit flipped, bytes cut out, a space,
    newline, CR, dash, ``=``, ``A`` or ``>`` put in, the file cut short): the opener
    raises Damaged or hands it on, and then ``keys.decrypt`` refuses it with CryptError;
    never a plaintext, never another exception."""
    identity, recipient = age_identity()
    other_key = tmp_path / "other.txt"
    subprocess.run(["age-keygen", "-o", str(other_key)], check=True, capture_output=True)
    other = subprocess.run(
        ["age-keygen", "-y", str(other_key)], check=True, capture_output=True, text=True
    ).stdout.strip()
    plain = bytes(range(256)) * 300  # 76,800 bytes: a full chunk and a short final one
    sealed = subprocess.run(
        ["age", "-e", "-r", other, "-r", recipient], input=plain, capture_output=True, check=True
    ).stdout
    secret = [line for line in identity.read_text().splitlines() if line.startswith("AGE-")]
    found = [stream.Key(text) for text in secret]
    assert stream.open_age(sealed, found) == plain
    header_end = sealed.index(b"\n", sealed.index(b"\n--- ") + 1) + 1
    rng = random.Random(24)
    keys.use_identity(identity)
    try:
        for _ in range(2000):
            bad = bytearray(sealed)
            at = rng.randrange(header_end + 20 if rng.random() < 0.8 else len(bad))
            how = rng.randrange(4)
            if how == 0:
                bad[at] ^= 1 << rng.randrange(8)
            elif how == 1:
                del bad[at : at + rng.randrange(1, 4)]
            elif how == 2:
                bad[at:at] = bytes([rng.choice(b" \n\r-=A>")])
            else:
                del bad[at:]
            if bad == sealed:
                continue
            try:
                opened = stream.open_age(bytes(bad), found)
            except stream.Damaged:
                continue
            assert opened is None, (how, at)
            with pytest.raises(keys.CryptError):
                keys.decrypt(bytes(bad), Path("bad.age"))
    finally:
        keys.use_identity(None)
