"""An independent cosignature/v1 implementation (C2SP tlog-cosignature),
written from the spec with Python's `cryptography` Ed25519, to check
Matterdrop's against: `verify VKEY NOTE_FILE` and
`sign SEED_HEX NAME BODY_FILE TIME` (prints the signature line and the
verifier key)."""
import base64
import hashlib
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def message(body: bytes, t: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % t + body


def verify(vkey: str, note: str) -> int:
    name, kid, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    if raw[0] != 4:
        raise SystemExit("not a cosignature/v1 key")
    pub = raw[1:]
    if hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4].hex() != kid:
        raise SystemExit("key id mismatch")
    cut = note.rindex("\n\n")
    body, sigs = note[: cut + 1], note[cut + 2 :]
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            raise SystemExit("malformed signature line")
        who, sig64 = line[2:].rsplit(" ", 1)
        raw = base64.b64decode(sig64)
        if who != name or raw[:4].hex() != kid:
            continue
        t = int.from_bytes(raw[4:12], "big")
        Ed25519PublicKey.from_public_bytes(pub).verify(raw[12:], message(body.encode(), t))
        return t
    raise SystemExit("no cosignature by " + name)


def sign(seed_hex: str, name: str, body: str, t: int) -> None:
    k = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    # public_bytes_raw() needs cryptography 40; Debian 12 ships 38.
    pub = k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    sig = k.sign(message(body.encode(), t))
    print("\u2014 " + name + " " + base64.b64encode(kid + t.to_bytes(8, "big") + sig).decode())
    print(name + "+" + kid.hex() + "+" + base64.b64encode(b"\x04" + pub).decode())


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        print("ok", verify(sys.argv[2], open(sys.argv[3], encoding="utf-8").read()))
    else:
        sign(sys.argv[2], sys.argv[3], open(sys.argv[4], encoding="utf-8").read(), int(sys.argv[5]))
