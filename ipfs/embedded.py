"""The embedded store: a directory of blocks keyed by multihash, no daemon.

Layout (``<root>/``)::

    blocks/<shard>/<KEY>.data   one block; KEY = base32 of its multihash (as Kubo's
                                flatfs names blocks), shard = KEY[-3:-1]
    pins/<CID>                  one empty file per pinned root

Crash safety: a block is written to a temp file in its shard directory and renamed
into place, so a reader (or a process killed mid-put) never sees half a block; the
rename is visible at once, and before ``put`` returns every block it wrote or
relied on, every directory entry and the pin are flushed to disk. A block that is
already present is re-hashed before it is relied on (a crash of the machine between
rename and flush could have left it short), and rewritten if wrong.

Several processes may put into one directory at once: names are unique per writer,
identical blocks have identical bytes so the last rename wins harmlessly, and pins
are separate files. Reads re-hash every block.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import itertools
import os
import queue
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from ipfs.builder import BlockSink, build
from ipfs.cid import block_key, multihash_of, parse_cid
from ipfs.errors import ContentNotFound, StoreError, StoreNotWritable
from ipfs.reader import BlockRef, iter_file
from ipfs.store import ContentStore

_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENOENT}


def _libc(name: str, argtypes: list) -> object | None:
    # Python's os module has no syncfs; it is a plain libc call on Linux.
    # Elsewhere it is None and per-file fsync is used.
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _libc("syncfs", [ctypes.c_int])
# Not used: starting write-back per block with sync_file_range(2) showed no
# consistent gain when measured (±15 % either way, more system CPU in some runs);
# the disk here is faster than the CPU, so one flush at the end is kept simple.


_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# Temp names: a random per-process tag (pids repeat across containers sharing a
# volume) + thread + counter are unique among live writers, with no syscall per block.
_TMP_TAG = secrets.token_hex(6)
_TMP_COUNTER = itertools.count()
_SHARDING = "/repo/flatfs/shard/v1/next-to-last/2"


class EmbeddedStore(ContentStore):
    """A directory-backed blockstore giving Kubo's CIDs."""

    def __init__(self, root: str | os.PathLike[str], *, sync: str = "auto") -> None:
        if sync not in ("auto", "fsync", "syncfs"):
            raise ValueError("sync is one of auto, fsync, syncfs")
        self.root = Path(root).expanduser()
        self.location = f"store {self.root}"
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._sync = sync if (sync != "syncfs" or _SYNCFS is not None) else "fsync"
        try:
            for d in (self.root, self._blocks, self._pins):
                d.mkdir(parents=True, exist_ok=True)
            self._make_shards()
        except (FileExistsError, NotADirectoryError) as exc:
            raise StoreNotWritable(self.root, f"{exc.filename} exists and is not a directory") from None
        except OSError as exc:
            raise StoreNotWritable(self.root, exc.strerror or str(exc)) from None

    def _make_shards(self) -> None:
        # All 1,024 shard directories are made once, when the store is created: a
        # mkdir costs a journal update (~0.3 ms here), too much to pay inside puts.
        # The SHARDING file (Kubo flatfs's name and text) marks a finished layout.
        marker = self._blocks / "SHARDING"
        if marker.exists():
            return
        for a in _BASE32:
            for b in _BASE32:
                os.makedirs(self._blocks / (a + b), exist_ok=True)
        tmp = self._blocks / f".SHARDING.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        tmp.write_text(_SHARDING + "\n")
        os.replace(tmp, marker)
        _fsync_dir(self._blocks)
        _fsync_dir(self.root)

    # -- writing -----------------------------------------------------------

    def put(self, data: bytes | bytearray | memoryview | BinaryIO, *, only_hash: bool = False) -> str:
        if only_hash:
            return build(data)[0]
        txn = _PutTransaction(self)
        try:
            cid, _root = build(data, txn)
            txn.commit(pins=[cid])
        except OSError as exc:
            raise self._write_error(exc) from None
        finally:
            txn.close()
        return cid

    def pin(self, cid: str) -> None:
        parsed = parse_cid(cid)
        if not self._block_path(multihash_of(parsed)).exists():
            raise ContentNotFound(cid, where=self.location, hint="put or import the content before pinning it")
        txn = _PutTransaction(self)
        try:
            txn.commit(pins=[str(parsed)])
        except OSError as exc:
            raise self._write_error(exc) from None
        finally:
            txn.close()

    def unpin(self, cid: str) -> None:
        parsed = parse_cid(cid)
        try:
            os.unlink(self._pins / str(parsed))
        except FileNotFoundError:
            raise StoreError(f"{cid} is not pinned in {self.location}", hint="list the pins with store.list()") from None
        except OSError as exc:
            raise self._write_error(exc) from None
        _fsync_dir(self._pins)

    def _write_pin(self, cid: str, txn: _PutTransaction) -> None:
        path = self._pins / cid
        if path.exists():
            txn.touched_dirs.add(str(self._pins))
            return
        tmp = self._pins / f".{cid}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        os.replace(tmp, path)
        txn.files.append(str(path))
        txn.touched_dirs.add(str(self._pins))

    def _write_error(self, exc: OSError) -> StoreError:
        if exc.errno in _WRITE_ERRNOS:
            return StoreNotWritable(self.root, f"{exc.strerror} ({exc.filename})")
        if exc.errno == errno.ENOSPC:
            return StoreError(f"{self.location}: no space left on the device", hint="free disk space or move the store")
        return StoreError(f"{self.location}: {exc.strerror or exc} ({exc.filename})")

    # -- reading -----------------------------------------------------------

    def iter_bytes(self, cid: str, *, max_bytes: int | None = None) -> Iterator[memoryview]:
        root = BlockRef.of(parse_cid(cid))
        return iter_file(root, self._fetcher(str(root)), self.location, self._prefetch, max_bytes=max_bytes)

    def _prefetch(self, refs: list[BlockRef]) -> None:
        # Blocks are separate files, so the kernel's read-ahead stops at each one;
        # asking for the next few up front overlaps disk reads with hashing.
        for ref in refs:
            try:
                fd = os.open(self._block_path(ref.multihash), os.O_RDONLY)
            except OSError:
                continue  # reported properly when the walk reaches it
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)

    def _fetcher(self, root: str):
        def fetch(c: BlockRef) -> bytes:
            path = self._block_path(c.multihash)
            try:
                with open(path, "rb", buffering=0) as fh:
                    return fh.read()
            except FileNotFoundError:
                if str(c) == root:
                    raise ContentNotFound(root, where=self.location) from None
                raise ContentNotFound(
                    str(c),
                    where=self.location,
                    hint=f"a block of {root} is missing; import the whole DAG again (fedledger ipfs dag import)",
                ) from None
            except OSError as exc:
                raise StoreError(f"cannot read block {c} from {self.location}: {exc.strerror}") from None

        return fetch

    def has(self, cid: str) -> bool:
        return self._block_path(multihash_of(parse_cid(cid))).exists()

    def read_block(self, ref: BlockRef, *, local_only: bool = False) -> bytes:
        """One block's raw bytes, unverified (callers verify)."""
        return self._fetcher(str(ref))(ref)

    def list(self) -> Iterator[str]:
        for entry in sorted(os.listdir(self._pins)):
            if not entry.startswith("."):
                yield entry

    # -- blocks ------------------------------------------------------------

    def _block_path(self, mh: bytes) -> Path:
        key = block_key(mh)
        return self._blocks / key[-3:-1] / f"{key}.data"

    def put_blocks(self, blocks: Iterable[tuple[BlockRef, bytes]], pin: Sequence[str] = ()) -> int:
        """Store already verified blocks and pin ``pin``, all flushed before return (CAR import)."""
        txn = _PutTransaction(self)
        count = 0
        try:
            for ref, block in blocks:
                txn.put_parts(ref.multihash, (block,), len(block))
                count += 1
            txn.commit(pins=list(pin))
        except OSError as exc:
            raise self._write_error(exc) from None
        finally:
            txn.close()
        return count


class _PutTransaction(BlockSink):
    """Writes blocks atomically as they come, flushes them all at commit().

    The writes run on one background thread, so the disk works while the caller
    hashes the next chunk (hashlib and file writes both release the GIL). The
    queue is short, so at most a few chunks are held in memory.
    """

    QUEUE_DEPTH = 8
    WRITERS = 2  # file creation is kernel work; two threads use both cores for it
    # Small puts (an update, a manifest) are written inline: handing a block to a
    # thread costs a wake-up, which on a busy machine is worth more than the overlap.
    INLINE_BLOCKS = 16

    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self.files: list[str] = []
        self.touched_dirs: set[str] = set()
        self._queue: queue.Queue | None = None
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._inline_left = self.INLINE_BLOCKS

    def put_parts(self, multihash: bytes, parts: tuple[bytes | memoryview, ...], size: int) -> None:
        if self._error is not None:
            raise self._error
        if self._inline_left > 0:
            self._inline_left -= 1
            self.write_block(multihash, parts, size)
            return
        if self._queue is None:
            self._queue = queue.Queue(self.QUEUE_DEPTH)
            for i in range(self.WRITERS):
                thread = threading.Thread(target=self._drain, name=f"fedledger-store-writer-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)
        self._queue.put((multihash, parts, size))

    def _drain(self) -> None:
        q = self._queue
        while True:
            item = q.get()  # type: ignore[union-attr]
            if item is None:
                return
            if self._error is None:
                try:
                    self.write_block(*item)
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def _stop_writers(self) -> None:
        if self._queue is not None:
            for _ in self._threads:
                self._queue.put(None)
            for thread in self._threads:
                thread.join()
            self._threads = []
            self._queue = None

    def _finish_writes(self) -> None:
        self._stop_writers()
        if self._error is not None:
            raise self._error

    def write_block(self, multihash: bytes, parts: tuple[bytes | memoryview, ...], size: int) -> None:
        store = self.store
        key = block_key(multihash)
        shard_dir = os.path.join(store._blocks, key[-3:-1])
        path = os.path.join(shard_dir, key + ".data")
        if os.path.exists(path) and _block_is_intact(path, multihash, size):
            self.files.append(path)  # maybe another writer's, not yet flushed: flush it too
            return
        tmp = os.path.join(shard_dir, f".{key}.{_TMP_TAG}.{threading.get_ident()}.{next(_TMP_COUNTER)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:  # shard directory removed since the store was made
            os.makedirs(shard_dir, exist_ok=True)
            self.touched_dirs.add(str(store._blocks))
            fd = os.open(tmp, flags, 0o644)
        try:
            _writev_all(fd, parts, size)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        os.replace(tmp, path)
        self.files.append(path)
        self.touched_dirs.add(shard_dir)

    def commit(self, pins: list[str] = ()) -> None:
        """Wait for the writes, add ``pins``, and make all of it durable."""
        self._finish_writes()
        for cid in pins:
            self.store._write_pin(cid, self)
        mode = self.store._sync
        if mode == "auto":
            # One syncfs(2) costs less than an fsync per block and directory (each
            # forces its own journal commit and device flush): measured 3-10x at 1 and
            # 64 MiB on ext4 (docs/store.md). Its price: it also flushes other
            # writers' dirty pages on the same file system; sync="fsync" avoids that.
            mode = "syncfs" if _SYNCFS is not None else "fsync"
        if mode == "syncfs":
            fd = os.open(self.store.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _SYNCFS(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err), str(self.store.root))
            finally:
                os.close(fd)
            return
        for path in self.files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for d in sorted(self.touched_dirs, key=len, reverse=True):
            _fsync_dir(d)

    def close(self) -> None:
        """Stop the writers (after an error in the caller too) and forget the batch."""
        if self._queue is not None:
            self._error = self._error or StoreError("put abandoned")
            self._stop_writers()
        self.files.clear()
        self.touched_dirs.clear()


def _writev_all(fd: int, parts: tuple[bytes | memoryview, ...], size: int) -> None:
    written = os.writev(fd, parts)
    if written == size:
        return
    # Short write (rare: signals, odd file systems): finish piece by piece.
    data = memoryview(b"".join(bytes(p) for p in parts))[written:]
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _block_is_intact(path: str, multihash: bytes, size: int) -> bool:
    try:
        if os.stat(path).st_size != size:
            return False
        with open(path, "rb", buffering=0) as fh:
            return hashlib.sha256(fh.read()).digest() == multihash[2:]
    except OSError:
        return False


def _fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
