"""The in-process store of cached answers: bytes and headers by key, bounded in bytes, with tags
for invalidation.

* Bound: ``max_bytes`` over bodies, headers, tags, keys and a fixed overhead per entry; an
  answer above a quarter of it is never stored. Least recently used entries go first.
* Admission (TinyLFU-lite): while there is room every answer is kept; when full, a newcomer
  displaces the least recently used entry only if its key has been asked for at least as often
  (counts are halved now and then, so old popularity fades).
* Coherence: ``invalidate(tags)`` drops every entry carrying one of the tags and remembers when,
  so an answer fetched before that moment is refused by ``put`` (a read that raced a write never
  stores the old bytes). ``flush`` drops everything and refuses every fill begun before it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable

from .asgi import Headers

#: Bytes counted per entry beyond its body and headers (key, tags, bookkeeping).
OVERHEAD = 256
#: Tags whose last invalidation is remembered; past this, all fills begun earlier are refused.
_MAX_TAG_EPOCHS = 100_000
#: Key counts kept for admission; past this (or as many lookups), every count is halved.
_MAX_COUNTS = 100_000

Key = Hashable


class Entry:
    """One cached answer (status 200): its headers (with ``ETag``) and body."""

    __slots__ = ("body", "etag", "expires", "headers", "size", "tags")

    def __init__(
        self,
        headers: Headers,
        body: bytes,
        etag: bytes,
        tags: frozenset[str],
        expires: float,
        key_size: int = 0,
    ) -> None:
        self.headers = headers
        self.body = body
        self.etag = etag
        self.tags = tags
        self.expires = expires
        self.size = (
            len(body)
            + sum(len(k) + len(v) for k, v in headers)
            + sum(len(t) for t in tags)
            + key_size
            + OVERHEAD
        )


class CacheStore:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_bytes // 4
        self.bytes = 0
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._by_tag: dict[str, set[Key]] = {}
        self._epoch = 0
        self._floor = 0  # fills begun before this are refused (flush, forgotten tag epochs)
        # Both by hash: a client chooses paths and queries, so their size must not count here.
        # A collision refuses a fill (epochs) or skews one admission (counts): never unsafe.
        self._tag_epochs: dict[int, int] = {}
        self._counts: dict[int, int] = {}
        self._lookups = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def epoch(self) -> int:
        """Note it before fetching an answer; pass it to ``put``."""
        return self._epoch

    def get(self, key: Key, now: float | None = None) -> Entry | None:
        """The live entry for ``key`` (now most recently used), or ``None``; counts the ask."""
        self._count(key)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= (time.monotonic() if now is None else now):
            self._remove(key, entry)
            return None
        self._entries.move_to_end(key)
        return entry

    def peek(self, key: Key, now: float | None = None) -> Entry | None:
        """Like ``get``, without counting the ask (a second lookup for the same request)."""
        entry = self._entries.get(key)
        if entry is None or entry.expires <= (time.monotonic() if now is None else now):
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Key, entry: Entry, started: int) -> bool:
        """Store ``entry`` fetched since epoch ``started``; ``False`` when it is refused (too
        large, invalidated meanwhile, or not admitted)."""
        if entry.size > self.max_entry or started < self._floor:
            return False
        epochs = self._tag_epochs
        if any(epochs.get(hash(tag), 0) > started for tag in entry.tags):
            return False
        old = self._entries.get(key)
        if old is not None:
            self._remove(key, old)
        if not self._make_room(key, entry.size):
            return False
        self._entries[key] = entry
        self.bytes += entry.size
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        return True

    def invalidate(self, tags: Iterable[str]) -> int:
        """Drop every entry carrying one of ``tags``; the number dropped."""
        self._epoch += 1
        epoch = self._epoch
        if len(self._tag_epochs) > _MAX_TAG_EPOCHS:
            self._tag_epochs.clear()
            self._floor = epoch
        dropped = 0
        for tag in tags:
            self._tag_epochs[hash(tag)] = epoch
            keys = self._by_tag.pop(tag, None)
            if not keys:
                continue
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None:
                    self._remove(key, entry)
                    dropped += 1
        return dropped

    def flush(self) -> int:
        """Drop everything; fills begun before now are refused."""
        dropped = len(self._entries)
        self._epoch += 1
        self._floor = self._epoch
        self._entries.clear()
        self._by_tag.clear()
        self._tag_epochs.clear()
        self.bytes = 0
        return dropped

    def _make_room(self, key: Key, size: int) -> bool:
        entries = self._entries
        if self.bytes + size <= self.max_bytes:
            return True
        wanted = self._counts.get(hash(key), 0)
        now = time.monotonic()
        while entries and self.bytes + size > self.max_bytes:
            victim_key, victim = next(iter(entries.items()))
            if victim.expires > now and self._counts.get(hash(victim_key), 0) > wanted:
                return False  # the resident is asked for more often: keep it
            self._remove(victim_key, victim)
        return self.bytes + size <= self.max_bytes

    def _remove(self, key: Key, entry: Entry) -> None:
        del self._entries[key]
        self.bytes -= entry.size
        for tag in entry.tags:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    def _count(self, key: Key) -> None:
        counts = self._counts
        h = hash(key)
        counts[h] = counts.get(h, 0) + 1
        self._lookups += 1
        if self._lookups >= _MAX_COUNTS or len(counts) >= _MAX_COUNTS:
            self._lookups = 0
            self._counts = {k: n // 2 for k, n in counts.items() if n > 1}
