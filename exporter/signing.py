"""Ed25519 signing of the disc manifest, and the key helper.

Ed25519 signatures are deterministic (RFC 8032), so signing the same manifest with the same key
gives the same bytes: the disc image stays reproducible. The public key's fingerprint is the
SHA-256 of its DER SubjectPublicKeyInfo; it is printed on the recording statement so a reader
can tell a re-signed disc from the original without trusting the disc itself.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublicKeyInfo:
    pem: bytes
    fingerprint: str  # hex SHA-256 of the DER SubjectPublicKeyInfo


def fingerprint(public: Ed25519PublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def generate_signing_key(path: Path) -> PublicKeyInfo:
    """Create a new Ed25519 private key (PKCS#8 PEM, mode 0600) at ``path``; refuses to overwrite."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    info = public_key_info(key)
    log.info("created export signing key %s (fingerprint %s)", path, info.fingerprint)
    return info


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the export signing key {path}: {exc}", path=str(path)) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"the export signing key {path} is not an Ed25519 key", path=str(path))
    return key


def public_key_info(key: Ed25519PrivateKey) -> PublicKeyInfo:
    public = key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKeyInfo(pem, fingerprint(public))


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The detached signature file's content: base64 of the 64-byte signature, one line."""
    return base64.b64encode(key.sign(data)) + b"\n"


def verify_signature(public_pem: bytes, data: bytes, signature_file: bytes) -> str | None:
    """None when valid, otherwise why not."""
    try:
        public = serialization.load_pem_public_key(public_pem)
    except ValueError as exc:
        return f"public key unreadable: {exc}"
    if not isinstance(public, Ed25519PublicKey):
        return "public key is not Ed25519"
    try:
        public.verify(base64.b64decode(signature_file.strip(), validate=True), data)
    except (InvalidSignature, ValueError):
        return "signature does not match the manifest"
    return None
