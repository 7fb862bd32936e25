"""A read-only NFS mount in user space: FUSE (fusepy, libfuse 2) over libnfs (ctypes), for bench/incremental.py.

This host's kernel has no NFS client, and the boot image deploys from an NFS mount; so the benchmark mounts the
store this way in the client's network namespace, and the deploy reads it as it would read the kernel's mount.

    python3 bench/nfsfuse.py SERVER EXPORT MOUNTPOINT [--version 4]     (foreground; stop with SIGTERM, then umount)

FUSE's worker threads share a few libnfs contexts, one caller at a time each (a context is not thread-safe), each
with its own open handles, the last few kept (a chunk store is thousands of files read once each).
Read only: getattr, readlink, readdir, open, read, release; everything else is EROFS/ENOSYS by fusepy's defaults.
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import errno
import logging
import os
import queue
import secrets
import stat
import sys
import threading
from typing import Any, Callable, TypeVar

from fuse import FUSE, FuseOSError, Operations  # type: ignore[import-untyped]

_lib = ctypes.CDLL("libnfs.so.13", use_errno=True)
_ctx = ctypes.c_void_p
T = TypeVar("T")
OPEN_HANDLES = 32  # per connection


class NfsStat64(ctypes.Structure):
    """libnfs's struct nfs_stat_64 (include/nfsc/libnfs.h)."""
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
        "atime", "mtime", "ctime", "atime_nsec", "mtime_nsec", "ctime_nsec", "used")]


class NfsDirent(ctypes.Structure):
    """The head of libnfs's struct nfsdirent: only the list link and the name are read."""


NfsDirent._fields_ = [("next", ctypes.POINTER(NfsDirent)), ("name", ctypes.c_char_p)]

_lib.nfs_init_context.restype = _ctx
_lib.nfs_destroy_context.argtypes = [_ctx]
_lib.nfs_get_error.argtypes = [_ctx]
_lib.nfs_get_error.restype = ctypes.c_char_p
_lib.nfs_set_version.argtypes = [_ctx, ctypes.c_int]
_lib.nfs4_set_client_name.argtypes = [_ctx, ctypes.c_char_p]
_lib.nfs4_set_verifier.argtypes = [_ctx, ctypes.c_char_p]
_lib.nfs_mount.argtypes = [_ctx, ctypes.c_char_p, ctypes.c_char_p]
_lib.nfs_get_readmax.argtypes = [_ctx]
_lib.nfs_get_readmax.restype = ctypes.c_size_t
_lib.nfs_lstat64.argtypes = [_ctx, ctypes.c_char_p, ctypes.POINTER(NfsStat64)]
_lib.nfs_readlink.argtypes = [_ctx, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
_lib.nfs_open.argtypes = [_ctx, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
_lib.nfs_close.argtypes = [_ctx, ctypes.c_void_p]
# libnfs 4 (Debian 12): offset before count (libnfs 6 swapped them).
_lib.nfs_pread.argtypes = [_ctx, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p]
_lib.nfs_opendir.argtypes = [_ctx, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
_lib.nfs_readdir.argtypes = [_ctx, ctypes.c_void_p]
_lib.nfs_readdir.restype = ctypes.POINTER(NfsDirent)
_lib.nfs_closedir.argtypes = [_ctx, ctypes.c_void_p]


def _check(result: int, ctx: int | None = None) -> int:
    """libnfs returns -errno on failure; its message goes to the log (a missing name is no news)."""
    if result < 0:
        if ctx is not None and -result != errno.ENOENT:
            logging.warning("%s", (_lib.nfs_get_error(ctx) or b"").decode(errors="replace"))
        raise FuseOSError(-result)
    return result


class Connection:
    """One libnfs context, mounted: the calls of one FUSE thread at a time."""

    def __init__(self, server: str, export: str, version: int) -> None:
        self.server, self.export, self.version = server, export, version
        self.ctx = 0
        # path → this context's open handle, most recent last; read only, so one per path is enough. Bounded: ganesha
        # answered NFS4ERR_IO once a deploy had opened ~10,000 chunks and none was closed.
        self.handles: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.connect()

    def connect(self) -> None:
        """A new context and mount (a fresh NFSv4 client): at start, and after the server expired the last one."""
        self.close()
        ctx = _lib.nfs_init_context()
        if not ctx:
            raise OSError(errno.ENOMEM, "nfs_init_context failed")
        _check(_lib.nfs_set_version(ctx, self.version))
        # One NFSv4 client identity per context: with libnfs's default (the same for every context of a process)
        # the server takes a second context's SETCLIENTID for a reboot and expires the first's state (EXPIRED).
        ident = f"imager-nfsfuse-{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}"
        _lib.nfs4_set_client_name(ctx, ident.encode())
        _lib.nfs4_set_verifier(ctx, secrets.token_hex(4).encode())  # 8 bytes
        if _lib.nfs_mount(ctx, self.server.encode(), self.export.encode()) < 0:
            message = (_lib.nfs_get_error(ctx) or b"").decode(errors="replace")
            _lib.nfs_destroy_context(ctx)
            logging.warning("nfs_mount %s:%s: %s", self.server, self.export, message)
            raise OSError(errno.EIO, f"nfs_mount {self.server}:{self.export}: {message}")
        self.ctx = ctx
        self.readmax = int(_lib.nfs_get_readmax(ctx)) or 1 << 20

    def close(self) -> None:
        if self.ctx:
            _lib.nfs_destroy_context(self.ctx)  # its handles go with it
        self.ctx = 0
        self.handles.clear()

    def lstat(self, path: str) -> NfsStat64:
        st = NfsStat64()
        _check(_lib.nfs_lstat64(self.ctx, path.encode(), ctypes.byref(st)), self.ctx)
        return st

    def handle(self, path: str) -> int:
        if path in self.handles:
            self.handles.move_to_end(path)
        else:
            while len(self.handles) >= OPEN_HANDLES:
                _, oldest = self.handles.popitem(last=False)
                _lib.nfs_close(self.ctx, oldest)
            fh = ctypes.c_void_p()
            _check(_lib.nfs_open(self.ctx, path.encode(), os.O_RDONLY, ctypes.byref(fh)), self.ctx)
            assert fh.value is not None
            self.handles[path] = fh.value
        return self.handles[path]

    def pread(self, path: str, size: int, offset: int) -> bytes:
        fh = self.handle(path)
        buf = ctypes.create_string_buffer(size)
        got = 0
        while got < size:  # at most readmax per call: the server's limit
            want = min(self.readmax, size - got)
            n = _check(_lib.nfs_pread(self.ctx, fh, offset + got, want, ctypes.byref(buf, got)), self.ctx)
            if n == 0:
                break
            got += n
        return buf.raw[:got]

    def listdir(self, path: str) -> list[str]:
        handle = ctypes.c_void_p()
        _check(_lib.nfs_opendir(self.ctx, path.encode(), ctypes.byref(handle)))
        names = []
        try:
            while entry := _lib.nfs_readdir(self.ctx, handle):
                names.append(entry.contents.name.decode())
        finally:
            _lib.nfs_closedir(self.ctx, handle)
        return names

    def readlink(self, path: str) -> str:
        buf = ctypes.create_string_buffer(4096)
        _check(_lib.nfs_readlink(self.ctx, path.encode(), buf, len(buf)))
        return buf.value.decode()


class NfsFuse(Operations):
    """The export, read only, over a fixed pool of libnfs connections, each used by one FUSE thread at a time.
    A call that fails for any reason but a missing name is tried once more on a new connection: libnfs renews no
    NFSv4 lease by itself, so a connection idle past the server's lease (60 s) meets NFS4ERR_EXPIRED."""

    def __init__(self, server: str, export: str, version: int, connections: int = 4) -> None:
        self.pool: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        for _ in range(connections):  # fail now, before mounting, if the server is not there
            self.pool.put(Connection(server, export, version))

    def _call(self, op: Callable[[Connection], T]) -> T:
        conn = self.pool.get()
        try:
            if not conn.ctx:
                conn.connect()
            try:
                return op(conn)
            except FuseOSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EROFS):
                    raise
                logging.warning("reconnecting after: %s", os.strerror(exc.errno))
                conn.connect()
                return op(conn)
        except OSError as exc:  # the new connection failed too: the caller gets EIO, the next call tries again
            if isinstance(exc, FuseOSError):
                raise
            conn.close()
            raise FuseOSError(errno.EIO) from exc
        finally:
            self.pool.put(conn)

    def getattr(self, path: str, fh: Any = None) -> dict[str, int | float]:
        st = self._call(lambda conn: conn.lstat(path))
        mode = int(st.mode)
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            mode &= ~0o222  # read only
        return {"st_mode": mode, "st_nlink": int(st.nlink), "st_size": int(st.size), "st_uid": int(st.uid),
                "st_gid": int(st.gid), "st_ino": int(st.ino),
                "st_atime": st.atime + st.atime_nsec / 1e9, "st_mtime": st.mtime + st.mtime_nsec / 1e9,
                "st_ctime": st.ctime + st.ctime_nsec / 1e9}

    def readdir(self, path: str, fh: Any) -> list[str]:
        return self._call(lambda conn: conn.listdir(path))

    def readlink(self, path: str) -> str:
        return self._call(lambda conn: conn.readlink(path))

    def open(self, path: str, flags: int) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_CREAT):
            raise FuseOSError(errno.EROFS)
        return 0  # the kernel looked the name up (getattr) just before; the first read opens it (an NFSv4 OPEN)

    def flush(self, path: str, fh: Any) -> int:
        # Nothing to flush (read only); ENOSYS once tells the kernel never to send FLUSH again: a call less a file.
        raise FuseOSError(errno.ENOSYS)

    def read(self, path: str, size: int, offset: int, fh: Any) -> bytes:
        return self._call(lambda conn: conn.pread(path, size, offset))

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server")
    parser.add_argument("export")
    parser.add_argument("mountpoint")
    parser.add_argument("--version", type=int, choices=(3, 4), default=4, help="NFS version (default 4)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="nfsfuse: %(message)s")  # fusepy's errors to our log
    try:
        fs = NfsFuse(args.server, args.export, args.version)
    except OSError as exc:
        print(f"nfsfuse: {exc}", file=sys.stderr)
        return 1
    # big_writes/max_read: the kernel asks in 128 KiB reads rather than 4 KiB ones.
    FUSE(fs, args.mountpoint, foreground=True, nothreads=False, ro=True, allow_other=True, max_read=131072,
         debug=os.environ.get("NFSFUSE_DEBUG") == "1",
         fsname=f"nfsfuse:{args.server}:{args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
