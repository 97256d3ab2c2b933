"""Writes the age test vectors of this folder: the X25519, header, HMAC and STREAM
cases of the C2SP CCTV age suite (c2sp.org/CCTV/age), rebuilt in Python from the
recipes of its generator programs (its ``internal/tests/*.go``; its binary ``testdata``
could not be fetched here), plus a few cases of our own (``local_*``). The rebuild is
faithful: ``x25519`` comes out byte for byte as CCTV's published ``testdata/x25519``
(share ``TEiF0ypq...``, body ``EmECAEcK...``, MAC ``Vn+54jqi...``).

Each file is in CCTV's format: ``expect: success | header failure | payload failure |
no match | HMAC failure``, ``payload: <sha256 of the plaintext a reader may have
released>`` (success and payload failure), ``file key``, ``identity: AGE-SECRET-KEY-1...``,
optional ``comment``, a blank line, then the age file's bytes. The randomness is
deterministic (ChaCha20 keyed with "TEST RANDOMNESS TEST RANDOMNESS!", as CCTV's), so
running this again writes the same bytes:

    python3 tests/data/age-vectors/generate.py

Every expectation is also checked against Debian's ``age`` by tests/test_age_vectors.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = Path(__file__).resolve().parent
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BASEPOINT = bytes([9]) + bytes(31)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _polymod(values: list[int]) -> int:
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32(hrp: str, data: bytes) -> str:
    """BIP173 bech32 of ``data`` (checksum over the lowercase form), uppercase."""
    acc = bits = 0
    five = []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    low = hrp.lower()
    expanded = [ord(c) >> 5 for c in low] + [0] + [ord(c) & 31 for c in low]
    poly = _polymod(expanded + five + [0] * 6) ^ 1
    check = [(poly >> 5 * (5 - i)) & 31 for i in range(6)]
    return (low + "1" + "".join(CHARSET[d] for d in five + check)).upper()


def unbech32(text: str) -> bytes:
    acc = bits = 0
    out = bytearray()
    for char in text.lower().rpartition("1")[2][:-6]:
        acc = (acc << 5) | CHARSET.index(char)
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return bytes(out)


def x25519(scalar: bytes, point: bytes) -> bytes:
    try:
        return X25519PrivateKey.from_private_bytes(scalar).exchange(
            X25519PublicKey.from_public_bytes(point)
        )
    except ValueError:  # a low-order point: the all-zero secret
        return bytes(32)


def hkdf(ikm: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def not_canonical(text: str) -> str:
    return text[:-1] + ALPHABET[ALPHABET.index(text[-1]) + 1]


TEST_FILE_KEY = b"YELLOW SUBMARINE"
TEST_IDENTITY = unbech32(
    "AGE-SECRET-KEY-1XMWWC06LY3EE5RYTXM9MFLAZ2U56JJJ36S0MYPDRWSVLUL66MV4QX3S7F6"
)
TEST_RECIPIENT = x25519(TEST_IDENTITY, BASEPOINT)
LARGE_FILE_KEY = bytes.fromhex("7aa5bdac0e6afeed3dd0a7eccb42af44")
LARGE_NONCE = bytes.fromhex("c82f71eb82029b77136399e485e879f4")
FIRST, SECOND, THIRD = (bytes([n]) * (64 * 1024) for n in range(3))


class TestFile:
    def __init__(self) -> None:
        cipher = Cipher(algorithms.ChaCha20(b"TEST RANDOMNESS TEST RANDOMNESS!", bytes(16)), None)
        self._stream = cipher.encryptor()
        self.buf = bytearray()
        self.file_key = TEST_FILE_KEY
        self.stream_key = b""
        self.counter = 0
        self.payload = bytearray()
        self.expect = "success"
        self.comment = ""
        self.identities: list[str] = []

    def rand(self, n: int) -> bytes:
        return self._stream.update(bytes(n))

    def text_line(self, text: str) -> None:
        self.buf += text.encode() + b"\n"

    def unread_line(self) -> str:
        body = bytes(self.buf).removesuffix(b"\n")
        start = body.rfind(b"\n") + 1
        del self.buf[start:]
        return body[start:].decode()

    def version_line(self, version: str) -> None:
        self.text_line("age-encryption.org/" + version)

    def args_line(self, *args: str) -> None:
        self.text_line(" ".join(["->", *args]))

    def body(self, data: bytes) -> None:
        while True:
            line, data = data[:48], data[48:]
            self.text_line(b64(line))
            if len(line) < 48:
                break

    def aead_body(self, key: bytes, plain: bytes) -> None:
        self.body(ChaCha20Poly1305(key).encrypt(bytes(12), plain, None))

    def x25519(self, identity: bytes) -> None:
        self.record(identity)
        self.x25519_no_record(identity)

    def record(self, identity: bytes) -> None:
        self.identities.append(bech32("AGE-SECRET-KEY-", identity))

    def x25519_no_record(self, identity: bytes) -> None:
        self.x25519_stanza(x25519(self.rand(32), BASEPOINT), identity)

    def x25519_stanza(self, share: bytes, identity: bytes) -> None:
        recipient = x25519(identity, BASEPOINT)
        self.args_line("X25519", b64(share))
        key = hkdf(x25519(identity, share), share + recipient, b"age-encryption.org/v1/X25519")
        self.aead_body(key, self.file_key)

    def scrypt(self, passphrase: str, work_factor: int) -> None:
        salt = self.rand(16)
        self.args_line("scrypt", b64(salt), str(work_factor))
        key = hashlib.scrypt(
            passphrase.encode(),
            salt=b"age-encryption.org/v1/scrypt" + salt,
            n=1 << work_factor,
            r=8,
            p=1,
            dklen=32,
        )
        self.aead_body(key, self.file_key)

    def hmac_line(self, mac: bytes) -> None:
        self.text_line("--- " + b64(mac))

    def hmac(self) -> None:
        key = hkdf(self.file_key, None, b"header")
        self.hmac_line(hmac.digest(key, bytes(self.buf) + b"---", "sha256"))

    def nonce(self, nonce: bytes) -> None:
        self.stream_key = hkdf(self.file_key, nonce, b"payload")
        self.buf += nonce

    def chunk(self, plain: bytes, final: bool = False) -> None:
        self.payload += plain
        nonce = self.counter.to_bytes(11, "big") + (b"\x01" if final else b"\x00")
        self.buf += ChaCha20Poly1305(self.stream_key).encrypt(nonce, plain, None)
        self.counter += 1

    def payload_text(self, plain: str) -> None:
        self.nonce(self.rand(16))
        self.chunk(plain.encode(), final=True)

    def fail(self, expect: str, good: int = 0) -> None:
        self.expect = expect
        self.payload = self.payload[:good]

    def flip_last_byte(self) -> None:
        self.buf[-1] ^= 0b0010_0000

    def render(self) -> bytes:
        lines = [f"expect: {self.expect}"]
        if self.expect in ("success", "payload failure"):
            lines.append(f"payload: {hashlib.sha256(self.payload).hexdigest()}")
        lines.append(f"file key: {self.file_key.hex()}")
        lines += [f"identity: {identity}" for identity in self.identities]
        if self.comment:
            lines.append(f"comment: {self.comment}")
        return "\n".join(lines).encode() + b"\n\n" + bytes(self.buf)


def simple(f: TestFile, text: str = "age") -> None:
    """Version line, our X25519 stanza, the MAC, one final chunk of ``text``."""
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.payload_text(text)


def large(f: TestFile) -> None:
    f.file_key = LARGE_FILE_KEY
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.nonce(LARGE_NONCE)


CASES: dict[str, Callable[[TestFile], None]] = {}


def case(function: Callable[[TestFile], None]) -> Callable[[TestFile], None]:
    CASES[function.__name__.removeprefix("v_")] = function
    return function


# -- X25519 ------------------------------------------------------------------------------


@case
def v_x25519(f: TestFile) -> None:
    simple(f)


@case
def v_x25519_bad_tag(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    body = bytearray(base64.b64decode(f.unread_line() + "=="))
    body[-1] ^= 0xFF
    f.text_line(b64(bytes(body)))
    f.hmac()
    f.payload_text("age")
    f.fail("no match")


@case
def v_x25519_extra_argument(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    body, args = f.unread_line(), f.unread_line()
    f.text_line(args + " 1234")
    f.text_line(body)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_x25519_grease(f: TestFile) -> None:
    f.version_line("v1")
    f.args_line("grease")
    f.body(b"")
    f.x25519(TEST_IDENTITY)
    f.args_line("grease")
    f.body(b"")
    f.hmac()
    f.payload_text("age")


@case
def v_x25519_identity(f: TestFile) -> None:
    f.version_line("v1")
    f.record(TEST_IDENTITY)
    f.x25519_stanza(bytes(32), TEST_IDENTITY)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")
    f.comment = "the X25519 share is the identity point: the shared secret is all zero"


@case
def v_x25519_long_file_key(f: TestFile) -> None:
    f.file_key = b"A LONGER YELLOW SUBMARINE"
    simple(f)
    f.fail("header failure")


@case
def v_x25519_long_share(f: TestFile) -> None:
    f.version_line("v1")
    share = x25519(f.rand(32), BASEPOINT)
    f.record(TEST_IDENTITY)
    f.x25519_stanza(share, TEST_IDENTITY)
    body, _ = f.unread_line(), f.unread_line()
    f.text_line("-> X25519 " + b64(share + b"\x00"))
    f.text_line(body)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


LOW_ORDER = bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7")


@case
def v_x25519_low_order(f: TestFile) -> None:
    f.version_line("v1")
    f.record(TEST_IDENTITY)
    f.x25519_stanza(LOW_ORDER, TEST_IDENTITY)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")
    f.comment = "the X25519 share is a low-order point: the shared secret is all zero"


@case
def v_x25519_lowercase(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    body, args = f.unread_line(), f.unread_line()
    f.args_line("x25519", args.split(" ")[2])
    f.text_line(body)
    f.hmac()
    f.payload_text("age")
    f.fail("no match")


@case
def v_x25519_multiple_recipients(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519_no_record(f.rand(32))
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.payload_text("age")


@case
def v_x25519_no_match(f: TestFile) -> None:
    f.version_line("v1")
    f.record(f.rand(32))
    f.x25519_no_record(TEST_RECIPIENT)
    f.hmac()
    f.payload_text("age")
    f.fail("no match")


@case
def v_x25519_not_canonical_body(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.text_line(not_canonical(f.unread_line()))
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_x25519_not_canonical_share(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    body, args = f.unread_line(), f.unread_line()
    f.text_line(not_canonical(args))
    f.text_line(body)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_x25519_short_share(f: TestFile) -> None:
    f.version_line("v1")
    share = bytes.fromhex("97ba38a135fd5f9137fca3836bfec24340ab03d7ca316b26f482636334a52600")
    f.record(TEST_IDENTITY)
    f.x25519_stanza(share, TEST_IDENTITY)
    body, _ = f.unread_line(), f.unread_line()
    f.text_line("-> X25519 " + b64(share[:31]))
    f.text_line(body)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_scrypt_and_x25519(f: TestFile) -> None:
    f.version_line("v1")
    f.record(f.rand(32))
    f.x25519_no_record(TEST_IDENTITY)
    f.scrypt("password", 10)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


# -- the header's grammar and its MAC -----------------------------------------------------


@case
def v_empty(f: TestFile) -> None:
    f.fail("header failure")


@case
def v_version_unsupported(f: TestFile) -> None:
    f.version_line("v1234")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_header_crlf(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.buf[:] = bytes(f.buf).replace(b"\n", b"\r\n")
    f.hmac()
    f.buf += f.unread_line().encode() + b"\r\n"
    f.payload_text("age")
    f.fail("header failure")


def _stanza_after_ours(f: TestFile, *lines: str, args: tuple[str, ...] = ("stanza",)) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.args_line(*args)
    for line in lines:
        f.text_line(line)


@case
def v_stanza_bad_start(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.text_line("-- stanza")
    f.body(b"")
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_base64_padding(f: TestFile) -> None:
    _stanza_after_ours(f)
    f.body(b"A" * 50)
    f.text_line(f.unread_line() + "=")
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_empty_argument(f: TestFile) -> None:
    _stanza_after_ours(f, "", args=("stanza", "", "argument"))
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_empty_body(f: TestFile) -> None:
    _stanza_after_ours(f, "", args=("empty",))
    f.hmac()
    f.payload_text("age")


@case
def v_stanza_empty_last_line(f: TestFile) -> None:
    _stanza_after_ours(f)
    f.body(b"A" * 96)
    f.hmac()
    f.payload_text("age")


@case
def v_stanza_invalid_character(f: TestFile) -> None:
    _stanza_after_ours(f, "", args=("stanza", "\u00e8"))
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_long_line(f: TestFile) -> None:
    _stanza_after_ours(f, "A" * 68, "")
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_missing_body(f: TestFile) -> None:
    _stanza_after_ours(f, args=("empty",))
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_missing_final_line(f: TestFile) -> None:
    _stanza_after_ours(f, "A" * 64)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_multiple_short_lines(f: TestFile) -> None:
    _stanza_after_ours(f, "A" * 32, "A" * 32)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_no_arguments(f: TestFile) -> None:
    _stanza_after_ours(f, "", args=())
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_not_canonical(f: TestFile) -> None:
    _stanza_after_ours(f)
    f.body(b"A" * 50)
    f.text_line(not_canonical(f.unread_line()))
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_spurious_cr(f: TestFile) -> None:
    _stanza_after_ours(f, "A" * 32 + "\r" + "A" * 31)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_stanza_valid_characters(f: TestFile) -> None:
    f.version_line("v1")
    f.args_line("!\"#$%&'", "()*+,-./", "01234567", "89:;<=>?", "@ABCDEFG", "HIJKLMNO")
    f.body(b"")
    f.args_line("PQRSTUVW", "XYZ[\\]^_", "`abcdefg", "hijklmno", "pqrstuvw", "xyz{|}~")
    f.body(b"")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.payload_text("age")


@case
def v_hmac_bad(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.file_key = bytes(16)
    f.hmac()
    f.file_key = TEST_FILE_KEY
    f.payload_text("age")
    f.fail("HMAC failure")


def _mac_line(f: TestFile, change: Callable[[str], str]) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.text_line(change(f.unread_line()))
    f.payload_text("age")
    f.fail("header failure")


@case
def v_hmac_extra_space(f: TestFile) -> None:
    _mac_line(f, lambda line: line.replace("--- ", "---  "))


@case
def v_hmac_garbage(f: TestFile) -> None:
    _mac_line(f, lambda line: line + "AAA")


@case
def v_hmac_missing(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.hmac_line(b"")
    f.payload_text("age")
    f.fail("header failure")


@case
def v_hmac_no_space(f: TestFile) -> None:
    _mac_line(f, lambda line: line.replace("--- ", "---"))


@case
def v_hmac_not_canonical(f: TestFile) -> None:
    _mac_line(f, not_canonical)


@case
def v_hmac_trailing_space(f: TestFile) -> None:
    _mac_line(f, lambda line: line + " ")


@case
def v_hmac_truncated(f: TestFile) -> None:
    _mac_line(f, lambda line: line[: len("--- 1234")])


# -- the payload (STREAM) -----------------------------------------------------------------


@case
def v_stream_bad_tag(f: TestFile) -> None:
    simple(f)
    f.flip_last_byte()
    f.fail("payload failure")


@case
def v_stream_bad_tag_second_chunk(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.chunk(b"age", final=True)
    f.flip_last_byte()
    f.fail("payload failure", 64 * 1024)


@case
def v_stream_bad_tag_second_chunk_full(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.chunk(SECOND, final=True)
    f.flip_last_byte()
    f.fail("payload failure", 64 * 1024)


@case
def v_stream_empty_payload(f: TestFile) -> None:
    simple(f, "")


@case
def v_stream_last_chunk_empty(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.chunk(b"", final=True)
    f.fail("payload failure", 64 * 1024)
    f.comment = "final STREAM chunk can't be empty unless whole payload is empty"


@case
def v_stream_last_chunk_full(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST, final=True)


@case
def v_stream_last_chunk_full_second(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.chunk(SECOND, final=True)


@case
def v_stream_missing_tag(f: TestFile) -> None:
    simple(f)
    del f.buf[-16:]
    f.fail("payload failure")


@case
def v_stream_no_chunks(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.nonce(f.rand(16))
    f.fail("payload failure")


@case
def v_stream_no_final(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.nonce(f.rand(16))
    f.chunk(b"\x01")
    f.fail("payload failure")


@case
def v_stream_no_final_full(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.fail("payload failure", 64 * 1024)


@case
def v_stream_no_final_two_chunks(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.chunk(b"age")
    f.fail("payload failure", 64 * 1024)


@case
def v_stream_no_final_two_chunks_full(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.chunk(SECOND)
    f.fail("payload failure", 2 * 64 * 1024)


@case
def v_stream_short_chunk(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.nonce(f.rand(16))
    f.buf += f.rand(12)
    f.fail("payload failure")


@case
def v_stream_short_nonce(f: TestFile) -> None:
    f.version_line("v1")
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.buf += f.rand(12)
    f.fail("header failure")


@case
def v_stream_short_second_chunk(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.buf += f.rand(12)
    f.fail("payload failure", 64 * 1024)


@case
def v_stream_three_chunks(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.chunk(SECOND)
    f.chunk(THIRD, final=True)


@case
def v_stream_trailing_garbage_long(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST, final=True)
    f.buf += f.rand(20)
    f.fail("payload failure", 64 * 1024)


@case
def v_stream_trailing_garbage_short(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST, final=True)
    f.buf += f.rand(12)
    f.fail("payload failure", 64 * 1024)


@case
def v_stream_two_chunks(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST)
    f.chunk(b"age", final=True)


@case
def v_stream_two_final_chunks(f: TestFile) -> None:
    large(f)
    f.chunk(FIRST, final=True)
    f.chunk(b"age", final=True)
    f.fail("payload failure", 64 * 1024)


# -- ours: what a lax reader would open although a stanza before or after ours is wrong --


def _bad_then_ours(f: TestFile, bad: Callable[[TestFile], None]) -> None:
    f.version_line("v1")
    bad(f)
    f.x25519(TEST_IDENTITY)
    f.hmac()
    f.payload_text("age")
    f.fail("header failure")


@case
def v_local_low_order_then_ours(f: TestFile) -> None:
    _bad_then_ours(f, lambda g: g.x25519_stanza(LOW_ORDER, TEST_IDENTITY))
    f.comment = "a low-order X25519 share before our stanza: the identity must abort"


def _extra_argument(g: TestFile) -> None:
    g.x25519_no_record(g.rand(32))
    body, args = g.unread_line(), g.unread_line()
    g.text_line(args + " 1234")
    g.text_line(body)


@case
def v_local_extra_argument_then_ours(f: TestFile) -> None:
    _bad_then_ours(f, _extra_argument)
    f.comment = "an X25519 stanza of three arguments before ours must be rejected"


def _short_body(g: TestFile) -> None:
    g.args_line("X25519", b64(x25519(g.rand(32), BASEPOINT)))
    g.body(g.rand(31))


@case
def v_local_short_body_then_ours(f: TestFile) -> None:
    _bad_then_ours(f, _short_body)
    f.comment = "an X25519 stanza whose body is not 32 bytes before ours must be rejected"


def main() -> None:
    for name, build in CASES.items():
        f = TestFile()
        build(f)
        (HERE / name).write_bytes(f.render())


if __name__ == "__main__":
    main()
