"""Password hashing: argon2id (argon2-cffi, RFC 9106 low-memory parameters)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # hashing cost grows with length: refuse absurd inputs

_hasher = PasswordHasher()  # argon2id, 64 MiB, t=3, p=4
# Verified against when the e-mail is unknown, so a login costs the same either way and its
# timing does not tell which addresses have accounts.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def check_policy(password: str) -> str | None:
    """Why the password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"at most {MAX_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
