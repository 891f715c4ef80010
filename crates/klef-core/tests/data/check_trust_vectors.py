#!/usr/bin/env python3
"""Recomputes trust-vectors.json with an independent implementation (Python `cryptography`),
so the Rust code and the documented format (docs/crypto.md (trust records)) are checked
against each other, not only against themselves.

Usage: python3 crates/klef-core/tests/data/check_trust_vectors.py   (exit 0 = all match)
"""
import hashlib
import json
import pathlib
import struct
import sys

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
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


def u8(v: int) -> bytes:
    return bytes([v])


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def mac(key: bytes, msg: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(msg)
    return h.finalize()


def b32(data: bytes) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(alphabet[int(bits[i : i + 5], 2)] for i in range(0, len(bits), 5))


def ed_public(seed: bytes) -> bytes:
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(*RAW)


def x_public(private: bytes) -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(*RAW)


def person(p: dict) -> dict:
    account = uuid_bytes(p["account_id"])
    seed = hkdf(bytes.fromhex(p["master_key"]), b"klef/v1/identity/ed25519" + account)
    return {
        "account": account,
        "ed": ed_public(seed),
        "x": x_public(bytes.fromhex(p["x25519_private"])),
        "email": p["email"].encode(),
    }


def member_fields(p: dict, role: int, only: list) -> list:
    fields = [u8(1), p["account"], p["email"], p["ed"], p["x"], u8(role)]
    if only is None:
        return fields + [u8(0)]
    return fields + [u8(1), u32(len(only))] + sorted(only)


def roster_body(ws, seq, prev, signer, record_fields) -> bytes:
    return labelled("sig/roster", ws, u64(seq), prev, signer, *record_fields)


def check_roster(case: dict, check) -> None:
    ws = uuid_bytes(case["workspace_id"])
    project = uuid_bytes(case["project_id"])
    env = uuid_bytes(case["environment_id"])
    owner, admin, mia = (person(case[k]) for k in ("owner", "admin", "member"))
    secret = bytes.fromhex(case["system_key"]["secret"])
    key_id = uuid_bytes(case["system_key"]["key_id"])
    sys_x = x_public(hkdf(secret, b"klef/v1/api-key/x25519"))
    sys_ed = ed_public(hkdf(secret, b"klef/v1/api-key/ed25519"))
    records = [
        (owner, member_fields(owner, 1, None)),
        (owner, member_fields(admin, 2, None)),
        (admin, member_fields(mia, 3, [env])),
        # Scopes sorted: (project, all) before (project, env).
        (admin, [u8(2), key_id, sys_x, sys_ed, u8(2), admin["account"], u32(2), project, b"", project, env]),
        (owner, [u8(3), u8(2), key_id]),
    ]
    prev = bytes(32)
    for i, ((signer, fields), entry) in enumerate(zip(records, case["entries"])):
        body = roster_body(ws, i, prev, signer["account"], fields)
        check(f"roster entry {i} body", body.hex(), entry["body"])
        digest = hashlib.sha256(body).digest()
        check(f"roster entry {i} hash", digest.hex(), entry["hash"])
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(signer["ed"]).verify(
                bytes.fromhex(entry["signature"]), body
            )
        except Exception:  # noqa: BLE001 - any failure is a mismatch
            check(f"roster entry {i} signature", "invalid", "valid")
        prev = digest
    code = hashlib.sha256(labelled("roster-code", ws, u64(4), prev)).digest()[:8]
    check("verification code", f"4 {grouped(code)}", case["verification_code"])

    pr = case["project_record"]
    pk = bytes.fromhex(pr["project_key"])
    body = labelled(
        "sig/project", ws, project, b"api", u64(1), bytes(32), u64(1),
        mac(pk, labelled("project-key-commit", project, u64(1))),
        u8(1), u64(4), prev, u8(1), owner["account"],
    )
    check("project record body", body.hex(), pr["body"])
    check("project record hash", hashlib.sha256(body).hexdigest(), pr["hash"])
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(owner["ed"]).verify(
            bytes.fromhex(pr["signature"]), body
        )
    except Exception:  # noqa: BLE001
        check("project record signature", "invalid", "valid")

    m = case["manifest"]
    env_key = bytes.fromhex(m["environment_key"])
    kc = mac(env_key, labelled("key-commit", env, u64(1)))
    values = []
    for name in sorted(m["values"]):
        version, ct = m["values"][name]
        values += [name.encode(), u64(version), hashlib.sha256(bytes.fromhex(ct)).digest()]
    body = labelled(
        "sig/manifest", ws, project, b"api", env, b"staging", u64(1), bytes(32), u64(1), kc,
        u8(1), u64(4), prev, u8(1), admin["account"], u32(len(m["values"])), *values,
    )
    check("manifest body", body.hex(), m["body"])
    check("manifest hash", hashlib.sha256(body).hexdigest(), m["hash"])
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(admin["ed"]).verify(
            bytes.fromhex(m["signature"]), body
        )
    except Exception:  # noqa: BLE001
        check("manifest signature", "invalid", "valid")


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

    for case in vectors["roster"]:
        check_roster(case, check)

    for i, case in enumerate(vectors["invite"]):
        genesis = bytes.fromhex(case["genesis_hash"])
        secret = bytes.fromhex(case["secret"])
        checksum = hashlib.sha256(labelled("invite-code", genesis, secret)).digest()[:4]
        check(f"invite[{i}].code", "klef_inv_" + b32(genesis + secret + checksum), case["code"])
        who = vectors["identity"][case["identity"]]
        msg = labelled(
            "invite-mac",
            uuid_bytes(case["workspace_id"]),
            uuid_bytes(case["invite_id"]),
            genesis,
            uuid_bytes(who["account_id"]),
            bytes.fromhex(who["identity_public"]),
            bytes.fromhex(who["x25519_public"]),
        )
        check(f"invite[{i}].mac", mac(secret, msg).hex(), case["mac"])

    for i, case in enumerate(vectors["key_commitment"]):
        key = bytes.fromhex(case["key"])
        v = u64(case["key_version"])
        env_kc = mac(key, labelled("key-commit", uuid_bytes(case["environment_id"]), v))
        proj_kc = mac(key, labelled("project-key-commit", uuid_bytes(case["project_id"]), v))
        check(f"key_commitment[{i}].environment", env_kc.hex(), case["environment_commitment"])
        check(f"key_commitment[{i}].project", proj_kc.hex(), case["project_commitment"])

    for i, case in enumerate(vectors["api_key"]):
        secret = bytes.fromhex(case["secret"])
        bearer = hkdf(secret, b"klef/v1/api-key/bearer")
        check(f"api_key[{i}].bearer", bearer.hex(), case["bearer"])
        check(f"api_key[{i}].bearer_hash", hashlib.sha256(bearer).hexdigest(), case["bearer_hash"])
        check(f"api_key[{i}].x25519", x_public(hkdf(secret, b"klef/v1/api-key/x25519")).hex(), case["x25519_public"])
        check(f"api_key[{i}].ed25519", ed_public(hkdf(secret, b"klef/v1/api-key/ed25519")).hex(), case["ed25519_public"])
        sealed = bytes.fromhex(case["sealed_anchor"])
        plain = AESGCM(hkdf(secret, b"klef/v1/api-key/anchor")).decrypt(
            sealed[1:13], sealed[13:], labelled("api-key/anchor", uuid_bytes(case["key_id"]))
        )
        want = labelled(
            "api-key/anchor-state",
            uuid_bytes(case["workspace_id"]),
            bytes.fromhex(case["genesis_hash"]),
            u64(case["roster_sequence"]),
            bytes.fromhex(case["roster_hash"]),
        )
        check(f"api_key[{i}].anchor", plain.hex(), want.hex())
        check(f"api_key[{i}].suite", sealed[0], 1)

    for i, case in enumerate(vectors["account_state"]):
        want = labelled(
            "account-state/pins",
            u32(1),
            uuid_bytes(case["workspace_id"]),
            bytes.fromhex(case["genesis_hash"]),
            u64(case["roster_sequence"]),
            bytes.fromhex(case["roster_hash"]),
            u32(1),
            uuid_bytes(case["environment_id"]),
            u64(case["revision"]),
            bytes.fromhex(case["manifest_hash"]),
            u64(case["key_version"]),
            u32(1),
            uuid_bytes(case["project_id"]),
            u64(case["project_revision"]),
            bytes.fromhex(case["project_record_hash"]),
            u64(case["project_key_version"]),
        )
        check(f"account_state[{i}].plaintext", want.hex(), case["plaintext"])
        sealed = bytes.fromhex(case["sealed"])
        key = hkdf(bytes.fromhex(case["master_key"]), b"klef/v1/account-state")
        plain = AESGCM(key).decrypt(
            sealed[1:13], sealed[13:], labelled("account-state", uuid_bytes(case["account_id"]))
        )
        check(f"account_state[{i}].sealed", plain.hex(), case["plaintext"])

    for f in failures:
        print(f, file=sys.stderr)
    print(f"{len(failures)} mismatches" if failures else "all trust vectors match")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
