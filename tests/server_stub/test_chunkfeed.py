"""The server's writer of a chunked partition's multicast stream (server_stub/chunkfeed.py), through a real pipe,
read back by the client's checking receiver (imager/chunkstream.py)."""
from __future__ import annotations

import hashlib
import io
import os
import threading

import pytest

from contract import chunkindex
from imager.chunkstream import receive_chunked
from imager.errors import ChecksumMismatch
from server_stub.chunkfeed import ChunkFeed, missing_chunks
from tests.imager.test_chunkstream import node, raw_of, stream_of  # noqa: F401  (the node fixture)
from tests.server_stub.chunkfiles import chunk_path, store_chunk


def test_the_feed_writes_the_stream_into_a_pipe_and_leaves_no_thread_or_fd(node):
    root, index = node
    index_path = os.path.join(root, "d1p1.cidx")
    open(index_path, "wb").write(chunkindex.encode(index))
    fds = set(os.listdir("/proc/self/fd"))
    feed = ChunkFeed.open(root, index_path)
    feed.start()
    with os.fdopen(os.dup(feed.read_fd), "rb") as reader:
        got = reader.read()
    feed.close()
    assert got == stream_of(root, index) and feed.error is None and not feed.running
    assert set(os.listdir("/proc/self/fd")) == fds
    assert not [t for t in threading.enumerate() if t.name.startswith("chunkfeed-")]


def test_a_feed_whose_reader_goes_away_mid_stream_ends_without_error(node):
    """udp-sender stopped (a cancel): the pipe breaks, the writer returns, close() joins it."""
    root, index = node
    big = [store_chunk(root, os.urandom(4096) * 64) for _ in range(40)]   # more than the pipe holds
    fds = set(os.listdir("/proc/self/fd"))
    feed = ChunkFeed(root, chunkindex.ChunkIndex(index.header, index.bitmap, index.grid_blocks,
                                                  [chunkindex.Chunk(i, 1, 1, n) for i, n in enumerate(big)]), "big")
    feed.start()
    first = os.read(feed.read_fd, 1000)
    assert first
    feed.close()   # the only reader gone: EPIPE in the writer
    assert not feed.running and feed.error is None
    assert set(os.listdir("/proc/self/fd")) == fds


def test_a_missing_chunk_is_named_before_and_while_sending(node):
    root, index = node
    gone = index.chunks[3].sha256
    os.unlink(chunk_path(root, gone))
    assert missing_chunks(root, index) == [gone]
    feed = ChunkFeed(root, index, "d1p1.cidx")
    feed.start()
    with os.fdopen(os.dup(feed.read_fd), "rb") as reader:
        sent = reader.read()
    feed.close()
    assert feed.error is not None and f"chunk 4/6 ({gone})" in feed.error
    with pytest.raises(ChecksumMismatch, match=f"ends early, in chunk 4/6 \\({gone}"):
        receive_chunked(io.BytesIO(sent), index, "d1p1.cidx", io.BytesIO())


def test_a_chunk_in_the_collectors_trash_is_still_sent(node):
    root, index = node
    name = index.chunks[0].sha256
    trash = os.path.join(root, chunkindex.CHUNKS_DIR, chunkindex.TRASH_DIR)
    os.makedirs(trash)
    os.rename(chunk_path(root, name), os.path.join(trash, name + ".zst"))
    assert missing_chunks(root, index) == []
    out = io.BytesIO()
    receive_chunked(io.BytesIO(stream_of_trash(root, index, trash)), index, "x", out)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(raw_of(index)).digest()


def stream_of_trash(root, index, trash) -> bytes:
    feed = ChunkFeed(root, index, "x")
    feed.start()
    with os.fdopen(os.dup(feed.read_fd), "rb") as reader:
        data = reader.read()
    feed.close()
    assert feed.error is None
    return data
