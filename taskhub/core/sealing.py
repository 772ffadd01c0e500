"""Sealing: encrypting small secrets at rest (credential headers, signing secrets).

Fernet (AES-128-CBC + HMAC-SHA256, authenticated) through MultiFernet, so keys rotate:
``TASKHUB_ENCRYPTION_KEYS`` holds comma-separated Fernet keys, the first seals and every
one unseals. Every process (API, workers, CLI) must share them. Without the variable, a
key is generated once into ``TASKHUB_DATA_DIR/encryption.key`` (mode 0600) and reused,
so ``taskhub dev`` needs no configuration; production must set the variable.

Errors (:class:`SealingError`) name the variable and never carry key or token bytes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from taskhub.core.settings import Settings

__all__ = ["KEY_FILE", "Sealer", "SealingError", "generate_key", "sealer_for"]

KEYS_VARIABLE: Final = "TASKHUB_ENCRYPTION_KEYS"
KEY_FILE: Final = "encryption.key"
#: Distinct sealed values a process keeps opened (per key set).
UNSEALED_CACHE_SIZE: Final = 4096


class SealingError(ValueError):
    """A key is malformed, or a sealed value cannot be opened with the keys in use."""


def generate_key() -> str:
    """A new Fernet key (urlsafe base64 of 32 random bytes), for the variable."""
    return Fernet.generate_key().decode("ascii")


class Sealer:
    """Seals with the first key, unseals with any (MultiFernet)."""

    def __init__(self, keys: tuple[str, ...], source: str) -> None:
        if not keys:
            raise SealingError(f"{source}: no encryption key")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeError):
                raise SealingError(
                    f"{source}: key {position} is not a Fernet key (32 bytes, urlsafe base64; "
                    "make one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())')"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._keys = keys
        self.source = source
        # A trigger worker unseals the same tenant's signing secrets and the same task's
        # headers for every occurrence; a decryption costs ~11 us, a cache hit nothing.
        self._opened = functools.lru_cache(maxsize=UNSEALED_CACHE_SIZE)(self._decrypt)

    def subkey(self, purpose: str) -> bytes:
        """A key for ``purpose`` (e.g. signing console cookies) derived from the sealing
        key: one secret to manage, and rotating it also retires what was signed."""
        first = self._keys[0].encode("ascii")
        return hmac.new(first, purpose.encode("utf-8"), hashlib.sha256).digest()

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def unseal(self, token: str) -> str:
        return self._opened(token)

    def _decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError, TypeError):
            raise SealingError(
                f"a stored secret cannot be unsealed with the keys in {self.source}: every "
                f"process must share {KEYS_VARIABLE}, and a retired key must stay listed "
                "(after the new first one) until secrets sealed with it are re-saved"
            ) from None

    def seal_json(self, value: dict[str, str]) -> str:
        return self.seal(json.dumps(value, sort_keys=True))

    def unseal_json(self, token: str) -> dict[str, str]:
        value = json.loads(self.unseal(token))
        if not isinstance(value, dict):
            raise SealingError("a sealed header set is not an object")
        return {str(k): str(v) for k, v in value.items()}


def _key_file(data_dir: Path) -> str:
    """The generated key of an installation without the variable: read, or created once
    with mode 0600. Written whole to a private temporary file, then linked into place
    (atomic, and refused if it exists), so two processes starting together agree and
    neither can read a half-written key."""
    path = data_dir / KEY_FILE
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    temporary = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(key + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text("ascii").strip()
    finally:
        temporary.unlink(missing_ok=True)
    return key


@functools.lru_cache(maxsize=8)
def _sealer(keys: tuple[str, ...]) -> Sealer:
    return Sealer(keys, KEYS_VARIABLE)


@functools.lru_cache(maxsize=8)
def _generated_sealer(data_dir: str) -> Sealer:
    path = Path(data_dir).resolve()
    return Sealer((_key_file(path),), f"{path / KEY_FILE} (set {KEYS_VARIABLE} in production)")


def sealer_for(settings: Settings) -> Sealer:
    """The sealer of these settings (cached per key set, or per data directory as
    configured). A trigger worker asks once per attempt, so nothing here touches the
    filesystem after the first call."""
    if settings.encryption_keys:
        return _sealer(settings.encryption_keys)
    return _generated_sealer(str(settings.data_dir))
