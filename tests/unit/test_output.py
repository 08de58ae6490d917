"""CappedBuffer: keeps head and tail of a stream in bounded memory, counts everything."""

from __future__ import annotations

import sys

import pytest

from hydra.execution.capture import CappedBuffer


def test_small_output_is_kept_whole():
    buf = CappedBuffer(16)
    buf.write(b"hello ")
    buf.write(b"world")
    assert buf.total == 11
    assert not buf.truncated
    assert buf.text() == "hello world"


def test_exactly_limit_is_not_truncated():
    buf = CappedBuffer(10)
    buf.write(b"0123456789")
    assert not buf.truncated
    assert buf.text() == "0123456789"


def test_keeps_head_and_tail_with_marker():
    buf = CappedBuffer(10)
    for i in range(100):  # "0".."99": 190 bytes in small writes
        buf.write(str(i).encode())
    stream = "".join(str(i) for i in range(100))
    assert buf.total == len(stream) == 190
    assert buf.truncated
    assert buf.text() == stream[:5] + "\n[... hydra: 180 bytes omitted ...]\n" + stream[-5:]


def test_odd_limit_gives_the_extra_byte_to_the_tail():
    buf = CappedBuffer(5)
    buf.write(b"abcdefghij")
    assert buf.text() == "ab\n[... hydra: 5 bytes omitted ...]\nhij"


def test_one_huge_write_is_split_correctly():
    buf = CappedBuffer(8)
    buf.write(b"A" * 4 + b"x" * 1000 + b"B" * 4)
    assert buf.text() == "AAAA\n[... hydra: 1000 bytes omitted ...]\nBBBB"
    assert buf.total == 1008


def test_memory_stays_bounded():
    buf = CappedBuffer(1024)
    chunk = b"y" * 65536
    for _ in range(160):  # 10 MiB in 64 KiB chunks
        buf.write(chunk)
    buf.write(b"z" * 3_000_000)  # and one big write
    assert buf.total == 160 * 65536 + 3_000_000
    assert sys.getsizeof(buf._head) + sys.getsizeof(buf._tail) <= 4096
    assert len(buf._head) + len(buf._tail) == 1024


def test_limit_zero_keeps_nothing_but_counts():
    buf = CappedBuffer(0)
    buf.write(b"abc")
    buf.write(b"")
    assert buf.total == 3
    assert buf.truncated
    assert buf.text() == "\n[... hydra: 3 bytes omitted ...]\n"


def test_limit_zero_with_nothing_written():
    buf = CappedBuffer(0)
    assert not buf.truncated
    assert buf.text() == ""


def test_multibyte_character_cut_at_the_edges_decodes_with_replacement():
    buf = CappedBuffer(9)  # head 4 bytes, tail 5 bytes
    buf.write("ééééé".encode())  # 10 bytes: 2-byte characters
    buf.write("€€€".encode())  # 9 bytes: 3-byte characters
    text = buf.text()
    head, _, tail = text.partition("\n[... hydra: 10 bytes omitted ...]\n")
    assert head == "éé"
    assert tail == "\ufffd\ufffd€"  # the tail starts in the middle of a "€"


def test_invalid_utf8_is_replaced():
    buf = CappedBuffer(100)
    buf.write(b"ok \xff\xfe end")
    assert buf.text() == "ok \ufffd\ufffd end"


def test_negative_limit_is_rejected():
    with pytest.raises(ValueError):
        CappedBuffer(-1)
