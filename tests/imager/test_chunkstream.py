"""A chunked partition's multicast stream, checked chunk by chunk (imager/chunkstream.py): the stream is built as
the server's writer builds it (server_stub/chunkfeed.head_frame, then the stored chunk files)."""
from __future__ import annotations

import io

import pytest
import zstandard

from contract import chunkindex
from imager.chunkstream import receive_chunked
from imager.errors import ChecksumMismatch
from server_stub.chunkfeed import head_frame
from tests.server_stub.chunkfiles import block_of, chunk_path, index_for, store_chunk


@pytest.fixture
def node(tmp_path):
    root = str(tmp_path)
    names = [store_chunk(root, block_of(f"block {i}")) for i in range(6)]
    return root, index_for(names)


def stream_of(root, index) -> bytes:
    """What the server sends: the header frame, then every chunk file as stored."""
    parts = [head_frame(index)]
    for chunk in index.chunks:
        with open(chunk_path(root, chunk.sha256), "rb") as f:
            parts.append(f.read())
    return b"".join(parts)


def raw_of(index) -> bytes:
    return index.header + index.bitmap + b"".join(block_of(f"block {i}") for i in range(len(index.chunks)))


def test_the_stream_decompresses_to_partclones_stream_and_passes(node):
    root, index = node
    out = io.BytesIO()
    seen = []
    assert receive_chunked(io.BytesIO(stream_of(root, index)), index, "d1p1.cidx", out, on_progress=seen.append) \
        == len(raw_of(index))
    assert out.getvalue() == raw_of(index) and sum(seen) == len(raw_of(index))


def test_a_chunk_with_other_valid_content_fails_naming_it_and_nothing_of_it_passes(node):
    root, index = node
    third = index.chunks[2].sha256
    with open(chunk_path(root, third), "wb") as f:   # a valid frame, the wrong bytes
        f.write(zstandard.ZstdCompressor().compress(block_of("something else")))
    out = io.BytesIO()
    with pytest.raises(ChecksumMismatch, match=f"chunk 3/6 \\({third}, range 2\\) arrived with SHA-256"):
        receive_chunked(io.BytesIO(stream_of(root, index)), index, "d1p1.cidx", out)
    assert out.getvalue() == raw_of(index)[:len(index.header + index.bitmap) + 2 * 4096]  # the two checked ones


def test_a_damaged_frame_fails_naming_its_chunk(node):
    root, index = node
    fifth = index.chunks[4].sha256
    data = bytearray(open(chunk_path(root, fifth), "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(chunk_path(root, fifth), "wb").write(bytes(data))
    with pytest.raises(ChecksumMismatch, match=f"chunk 5/6 \\({fifth}"):
        receive_chunked(io.BytesIO(stream_of(root, index)), index, "d1p1.cidx", io.BytesIO())


@pytest.mark.parametrize("where", ["header", "middle", "last chunk"])
def test_a_short_stream_fails_naming_where_it_ended(node, where):
    root, index = node
    whole = stream_of(root, index)
    last = len(open(chunk_path(root, index.chunks[-1].sha256), "rb").read())
    short = {"header": whole[:10], "middle": whole[:len(whole) // 2], "last chunk": whole[:-last]}[where]
    with pytest.raises(ChecksumMismatch, match="ends early") as err:
        receive_chunked(io.BytesIO(short), index, "d1p1.cidx", io.BytesIO())
    assert {"header": "in its header", "middle": "in chunk ", "last chunk": "in chunk 6/6"}[where] in str(err.value)


def test_a_long_stream_and_another_header_fail(node):
    root, index = node
    extra = stream_of(root, index) + zstandard.ZstdCompressor().compress(b"x" * 10)
    with pytest.raises(ChecksumMismatch, match="goes on past its last chunk"):
        receive_chunked(io.BytesIO(extra), index, "d1p1.cidx", io.BytesIO())
    other = chunkindex.ChunkIndex(index.header[:-1] + b"\1", index.bitmap, index.grid_blocks, index.chunks)
    wrong_head = head_frame(other) + stream_of(root, index)[len(head_frame(index)):]
    with pytest.raises(ChecksumMismatch, match="header and bitmap received differ"):
        receive_chunked(io.BytesIO(wrong_head), index, "d1p1.cidx", io.BytesIO())
