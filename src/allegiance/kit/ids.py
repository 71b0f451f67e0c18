"""Opaque, time-sortable public ids with a type prefix: ``acc_01JC…``."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
# Every 10-bit value as its two base32 characters: an id is 13 table lookups.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_RANDOM_BATCH = 10 * 512  # random bytes read from the OS at a time (512 ids)
_pool = threading.local()


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _random80() -> int:
    """80 random bits from the OS (read in batches: one system call per 512 ids)."""
    buffer: bytes | None = getattr(_pool, "buffer", None)
    offset: int = getattr(_pool, "offset", 0)
    if buffer is None or offset >= len(buffer) or os.getpid() != getattr(_pool, "pid", None):
        buffer, offset = os.urandom(_RANDOM_BATCH), 0
        _pool.buffer, _pool.pid = buffer, os.getpid()
    _pool.offset = offset + 10
    return int.from_bytes(buffer[offset : offset + 10], "big")


def new_id(prefix: str) -> str:
    """A ULID-like id (48-bit milliseconds + 80 random bits) behind ``prefix_``: 26
    characters, the milliseconds in the first 10 (so ids sort by time), big-endian."""
    value = ((time.time_ns() // 1_000_000) << 80) | _random80()
    pairs = _PAIRS
    return prefix + "_" + "".join(
        [pairs[(value >> shift) & 1023] for shift in range(120, -10, -10)]
    )


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) == len(prefix) + 27
