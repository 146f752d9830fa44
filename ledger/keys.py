"""Ed25519 keys on disk: an organisation's signing key stays in a local file that only its owner reads.

Private keys are PKCS#8 PEM files created with mode 0600; the public half is shown as the protocol's
base64url raw key and its `kid`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verification.encoding import b64url_encode, key_id


@dataclass(frozen=True)
class KeyPair:
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_key(self) -> str:
        """The public key as the protocol writes it (base64url, no padding)."""
        return b64url_encode(self.public_raw)

    @property
    def kid(self) -> str:
        return key_id(self.public_raw)

    def save(self, path: Path) -> None:
        """Write the private key as PEM, readable by the owner only; never overwrite an existing key."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)

    @classmethod
    def load(cls, path: Path) -> KeyPair:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return cls(key)
