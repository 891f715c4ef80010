#!/usr/bin/env python3
"""Recomputes trust-vectors.json with an independent implementation (Python `cryptography`),
so the Rust code and the documented format (docs/decisions/0013-trust-records.md) are checked
against each other, not only against themselves.

Usage: python3 crates/klef-core/tests/data/check_trust_vectors.py   (exit 0 = all match)
"""
import hashlib
import json
import pathlib
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FILE = pathlib.Path(__file__).with_name("trust-vectors.json")
RAW = (Encoding.Raw, PublicFormat.Raw)


def labelled(label: str, *fields: bytes) -> bytes:
    out = b"klef/v1/" + label.encode() + b"\x00"
    for f in fields:
        out += struct.pack(">I", len(f)) + f
    return out


def hkdf(ikm: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(ikm)


def uuid_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace("-", ""))


def grouped(b: bytes) -> str:
    h = b.hex()
    return "-".join(h[i : i + 4] for i in range(0, len(h), 4))


def main() -> int:
    vectors = json.loads(FILE.read_text())
    failures = []

    def check(name, got, want):
        if got != want:
            failures.append(f"{name}: computed {got}, file has {want}")

    for i, case in enumerate(vectors["encoding"]):
        fields = [bytes.fromhex(f) for f in case["fields"]]
        check(f"encoding[{i}]", labelled(case["label"], *fields).hex(), case["bytes"])

    for i, case in enumerate(vectors["identity"]):
        account = uuid_bytes(case["account_id"])
        seed = hkdf(bytes.fromhex(case["master_key"]), b"klef/v1/identity/ed25519" + account)
        ed = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(*RAW)
        x = x25519.X25519PrivateKey.from_private_bytes(
            bytes.fromhex(case["x25519_private"])
        ).public_key().public_bytes(*RAW)
        check(f"identity[{i}].identity_public", ed.hex(), case["identity_public"])
        check(f"identity[{i}].x25519_public", x.hex(), case["x25519_public"])
        fp = hashlib.sha256(labelled("fingerprint", account, ed, x)).digest()[:16]
        check(f"identity[{i}].fingerprint", grouped(fp), case["fingerprint"])

    for f in failures:
        print(f, file=sys.stderr)
    print(f"{len(failures)} mismatches" if failures else "all trust vectors match")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
