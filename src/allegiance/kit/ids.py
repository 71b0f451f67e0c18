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


_LOW80 = (1 << 80) - 1


def _next_value() -> int:
    """48-bit milliseconds and 80 random bits; monotonic within a thread: an id made in the
    same millisecond as the thread's previous one (or while the clock stepped back) is that
    one plus 1, so the ids one unit of work makes sort in the order it made them (an outbox
    read in id order keeps a transaction's events in order). A forked process starts over
    from random bits, so it never repeats its parent's sequence."""
    ms = time.time_ns() // 1_000_000
    last: int = getattr(_pool, "last", 0)
    pid = os.getpid()
    if (ms <= last >> 80 and last & _LOW80 != _LOW80
            and getattr(_pool, "last_pid", None) == pid):
        value = last + 1
    else:
        value = (ms << 80) | _random80()
    _pool.last, _pool.last_pid = value, pid
    return value


def new_id(prefix: str) -> str:
    """A ULID-like id (48-bit milliseconds + 80 random bits) behind ``prefix_``: 26
    characters, the milliseconds in the first 10 (so ids sort by time), big-endian; ids of
    one thread never go backwards (:func:`_next_value`)."""
    value = _next_value()
    pairs = _PAIRS
    return prefix + "_" + "".join(
        [pairs[(value >> shift) & 1023] for shift in range(120, -10, -10)]
    )


def has_prefix(value: str, prefix: str) -> bool:
    return value.startswith(prefix + "_") and len(value) == len(prefix) + 27
