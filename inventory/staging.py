"""A listing's pages made into staging rows, in worker processes when the listing is large.

Normalizing an image, checking it, fingerprinting it and writing it as COPY text costs the
sync more interpreter time than fetching it, and one process runs one interpreter at a
time: on a large listing the sync kept one core busy while the other waited for it. So the
batches of a large listing (:data:`POOL_MIN_IMAGES` images or more, by the first page's
total or the images the source holds) while the sync's process is busy (it is not when the
pages come at a cloud's pace: :data:`POOL_MIN_BUSY`) go to a pool of worker processes (``[sync]
workers``), which do all of that (:func:`stage_batch`) and answer COPY text; the sync
process fetches the pages and writes the text, in listing order. An image listed exactly
as stored (its raw record's digest among the run's known keys,
:func:`inventory.store.known_keys`) is not normalized at all: it is staged by its id and
digest; the workers map the keys from a temporary file. Where most of a listing is that
(a re-sync), staging costs little and stays in the process (:data:`POOL_MAX_KNOWN`). A
small listing, and ``workers = 0``, runs the same function in the process, so both ways
stage the same bytes.

The workers are started once per process (from a fork server, so a worker is a cheap fork
of a process that has imported this module alone) and kept for later runs. They ignore
SIGINT and SIGTERM: the sync process decides when a run stops; they hold no credentials,
only the raw image objects they are given.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import mmap
import multiprocessing
import signal
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from inventory import records, storable, store
from inventory.errors import InventoryError, ProviderError
from inventory.providers import PROVIDERS, Provider, fields
from inventory.providers.fields import image_id_of, noting
from inventory.records import ImageStatus
from inventory.storable import Storable

#: A listing this large (or a source holding this many images) is staged by the workers;
#: below it, starting them costs more than they save.
POOL_MIN_IMAGES = 20_000
#: ... and only while the sync's process is busy, using at least this share of a core
#: (all its threads: fetching, staging, other sources' runs): a listing that arrives at
#: a cloud's pace leaves it waiting for the provider, and workers would only add the cost
#: of their start.
POOL_MIN_BUSY = 0.6
#: ... and less than this share of the images staged so far were listed exactly as stored:
#: those are staged by their digest without being normalized (a fifth of the cost of
#: fetching them), and handing them to a worker costs more than staging them here (a
#: no-change re-sync of 100,000 QingCloud images listed in 1.5 s here, 2.4 s through
#: the workers).
POOL_MAX_KNOWN = 0.5
#: Images staged in the process before those shares are judged.
SAMPLE_IMAGES = 2_000
#: Batches handed to the workers and not yet written, per worker: enough to keep them
#: busy while the sync process writes, few enough that memory stays flat.
WINDOW_PER_WORKER = 8
#: Small pages go to a worker together, this many images at least (or the listing's rest):
#: each hand-over costs two pickles and two thread wake-ups, whatever its size.
TASK_IMAGES = 500
#: ... and at most this many images in them (a streamed answer's batches are large).
WINDOW_IMAGES = 4_000


class WorkerDied(InventoryError):
    """A worker process staging the listing's pages died (killed, out of memory)."""


@dataclass(slots=True)
class Staged:
    """One batch (of a page, or of several small ones, the last numbered ``number``), made
    ready to stage: its rows and what its checks found."""

    number: int
    rows: store.Rows
    checks: Storable
    unknown: Counter[str]


#: A batch's items by page: (page number, items), in listing order.
Segments = list[tuple[int, list[Any]]]


def stage_batch(
    provider: str,
    source: str,
    segments: Segments,
    seq: int,
    keys: Sequence[int] | str | None,
) -> Staged:
    """The items of ``segments`` as staging rows numbered from ``seq``, those among the
    known ``keys`` (or the file of them, in a worker) short; what cannot be stored is left
    out and noted in the answer's checks."""
    checks = Storable(source)
    unknown: Counter[str] = Counter()
    entries: list[store.Entry] = []
    known = _mapped(keys) if isinstance(keys, str) else keys
    for number, items in segments:
        normalized(PROVIDERS[provider], number, items, checks, unknown, entries, known)
    return Staged(segments[-1][0], store.encode_rows(entries, seq), checks, unknown)


#: In a worker: the key files last read (path -> their keys), newest last.
_key_files: OrderedDict[str, memoryview] = OrderedDict()


def _mapped(path: str) -> Sequence[int]:
    """The keys in the file ``path`` (:meth:`Batches.add` writes it), mapped once."""
    if path in _key_files:
        _key_files.move_to_end(path)
        return cast(Sequence[int], _key_files[path])
    with Path(path).open("rb") as file:
        keys = memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)).cast("q")
    _key_files[path] = keys
    while len(_key_files) > 8:  # several sources' runs at once (--jobs)
        _key_files.popitem(last=False)
    return cast(Sequence[int], keys)


def normalized(
    provider: Provider,
    number: int,
    items: list[dict[str, Any]],
    checks: Storable,
    unknown: Counter[str],
    entries: list[store.Entry],
    keys: Sequence[int] | None = None,
) -> None:
    """Items of page ``number`` as entries to stage, added to ``entries``; the bad ones
    are left out and noted in ``checks`` (one bad image fails no run). An item whose raw
    record's digest is among the ``keys`` (:func:`inventory.store.known_keys`) is listed
    exactly as stored: it is not normalized, and is staged by its id alone (which the
    merge checks, with the whole digest). An image whose normalizing has something to
    report (an unknown status, a value stored as null) is staged without a digest, so that
    each run normalizes, and reports, it again."""
    id_field = provider.id_field
    for item in items:
        raw, blob = checks.raw(item, number)
        digest = store.raw_digest(blob)
        if keys is not None and store.holds(keys, store.digest_key(digest)):
            image_id = raw.get(id_field)
            if isinstance(image_id, str) and image_id:
                entries.append((image_id, digest, None, None))
                continue
        try:
            with noting() as notes:
                normalized = provider.normalize(raw)
        except (ProviderError, ValueError) as err:
            checks.skip(number, image_id_of(raw), str(err))
            continue
        nulled_before = len(checks.nulled)
        record = checks.record(normalized, number, notes)
        if record is None:
            continue
        if record.status is ImageStatus.UNKNOWN:
            unknown[record.raw_status or "<empty>"] += 1
        # What the run reports of an image (an unknown status, a value stored as null) is
        # found by normalizing it: such an image gets no digest, so every run does.
        reported = record.status is ImageStatus.UNKNOWN or len(checks.nulled) > nulled_before
        entries.append((record.provider_image_id, None if reported else digest, record, blob))


def normalized_by(provider: str) -> str:
    """A version of the code that turns ``provider``'s raw records into stored rows: a
    digest of its normalizer's module and of the modules every normalizer runs through
    (records, fields, storable checks, this one, the staging encoder). A source's images
    are known by their raw records' digests only under the version that checked them
    (:func:`inventory.store.known_keys`): a release that changes any of this code
    normalizes every image again, once, on its first complete listing of each source."""
    version = _versions.get(provider)
    if version is None:
        shared = (records, fields, storable, sys.modules[__name__], store)
        files = [
            *PROVIDERS[provider].normalizer_files(),
            *(m.__file__ or m.__name__ for m in shared),
        ]
        hashed = hashlib.sha256()
        for name in files:
            try:
                hashed.update(Path(name).read_bytes())
            except OSError:  # no source file here: the name, and the release, stand for it
                hashed.update(f"{name} {_release()}".encode())
        version = _versions[provider] = hashed.hexdigest()[:16]
    return version


_versions: dict[str, str] = {}


def _release() -> str:
    try:
        return importlib.metadata.version("image-inventory")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


#: written(page number, rows staged so far), after each batch is written.
Written = Callable[[int, int], None]


class Batches:
    """One listing's batches, staged in listing order through ``stager``.

    :meth:`add` each batch as it is read; :meth:`finish` once the listing has ended, and
    :meth:`close` always (it drops what was not written). What the batches' checks found is
    added to ``checks`` and ``unknown`` as they are written."""

    def __init__(
        self,
        provider: str,
        stager: store.Stager,
        checks: Storable,
        unknown: Counter[str],
        *,
        workers: int,
        expected: int = 0,
        written: Written | None = None,
    ) -> None:
        self.provider, self.stager = provider, stager
        self.checks, self.unknown = checks, unknown
        self.workers, self.expected = workers, expected
        self.written = written
        #: Items handed in so far (gathered for a worker or not): the staging number of the
        #: next page's first row.
        self.submitted = 0
        self._pool: ProcessPoolExecutor | None = None
        self._waiting: deque[tuple[int, Future[Staged]]] = deque()  # (images, answer)
        self._pending = 0  # images in the batches waiting
        self._gathered: Segments = []  # small pages not yet handed to a worker
        self._gathered_images = 0
        self._keys_file: IO[bytes] | None = None
        self._since = time.perf_counter()
        self._cpu_since = time.process_time()

    def add(self, number: int, items: list[Any], total: int | None = None) -> None:
        """Stage page ``number``'s ``items``: in the workers once the listing, by
        ``total`` or what came before, is large, this process is busy
        (:data:`POOL_MIN_BUSY`), and most of it needs normalizing (:data:`POOL_MAX_KNOWN`)."""
        if self._pool is None and self._wants_workers(total):
            self._pool = _pool(self.workers)
            if self._pool is None:  # no fork server here (Windows): stage it all here
                self.workers = 0
            else:
                self._keys_file = _key_file(self.stager.known_keys)
        seq = self.submitted
        self.submitted += len(items)
        if self._pool is None:
            segments = [(number, items)]
            keys = self.stager.known_keys
            self._write(stage_batch(self.provider, self.checks.source, segments, seq, keys))
            return
        self._gathered.append((number, items))
        self._gathered_images += len(items)
        if self._gathered_images >= TASK_IMAGES:
            self._hand_over()
        while self._waiting and self._waiting[0][1].done():
            self._write(self._next())

    def _hand_over(self) -> None:
        """Give the gathered pages to a worker, once fewer batches than the window wait."""
        assert self._pool is not None
        images, segments = self._gathered_images, self._gathered
        self._gathered, self._gathered_images = [], 0
        while self._waiting and (
            len(self._waiting) >= self.workers * WINDOW_PER_WORKER
            or self._pending + images > WINDOW_IMAGES
        ):
            self._write(self._next())
        seq = self.submitted - images  # the gathered pages are the newest
        path = None if self._keys_file is None else self._keys_file.name
        try:
            source = self.checks.source
            future = self._pool.submit(stage_batch, self.provider, source, segments, seq, path)
        except BrokenProcessPool as err:
            raise self._died(err) from None
        self._waiting.append((images, future))
        self._pending += images

    def _wants_workers(self, total: int | None) -> bool:
        """Whether to start the workers now (while none run: all so far was staged here)."""
        if self.workers < 1 or max(total or 0, self.expected, self.submitted) < POOL_MIN_IMAGES:
            return False
        if self.submitted < SAMPLE_IMAGES:
            return False
        stager = self.stager
        if stager.count and stager.known >= POOL_MAX_KNOWN * stager.count:
            return False
        cpu = time.process_time() - self._cpu_since
        return cpu >= POOL_MIN_BUSY * (time.perf_counter() - self._since)

    def finish(self) -> None:
        """Write what the workers still hold."""
        if self._gathered:
            self._hand_over()
        while self._waiting:
            self._write(self._next())

    def close(self) -> None:
        for _, future in self._waiting:
            future.cancel()
        self._waiting.clear()
        self._pending = 0
        self._gathered, self._gathered_images = [], 0
        if self._keys_file is not None:
            self._keys_file.close()  # and deleted (a worker may keep it mapped a while)
            self._keys_file = None

    def _next(self) -> Staged:
        try:
            images, future = self._waiting.popleft()
            self._pending -= images
            return future.result()
        except BrokenProcessPool as err:
            raise self._died(err) from None

    def _died(self, err: BrokenProcessPool) -> WorkerDied:
        _forget(self._pool)
        return WorkerDied(
            f"a worker process staging the listing died ({err}); nothing of this listing was "
            "applied, and the next run starts new workers"
        )

    def _write(self, staged: Staged) -> None:
        self.stager.write_rows(staged.rows)
        self.checks.absorb(staged.checks)
        self.unknown.update(staged.unknown)
        if self.written is not None:
            self.written(staged.number, self.stager.count)


def _key_file(keys: array[int] | None) -> IO[bytes] | None:
    """The known keys in a temporary file the workers map (8 bytes an image), or None."""
    if keys is None:
        return None
    file = tempfile.NamedTemporaryFile(prefix="inventory-keys-", suffix=".bin")  # noqa: SIM115
    keys.tofile(file)
    file.flush()
    return file


_lock = threading.Lock()
_workers: ProcessPoolExecutor | None = None


def _pool(workers: int) -> ProcessPoolExecutor | None:
    """This process's workers, started on first use (``workers`` of them); None where
    processes cannot be started from a fork server."""
    global _workers
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    with _lock:
        if _workers is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            _workers = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_stops)
        return _workers


def _forget(pool: ProcessPoolExecutor | None) -> None:
    """Drop a broken pool, so that the next run starts new workers."""
    global _workers
    with _lock:
        if pool is not None and pool is _workers:
            _workers = None
            pool.shutdown(wait=False, cancel_futures=True)


def _ignore_stops() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
