"""Whole logs: a long stream's tail in live output, both streams in the order written, the
full-output directory, the download, and cutting output to its first or last lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydra.client import Chunk, first_lines, last_lines
from hydra.control.access import Reader
from hydra.control.output import download
from hydra.execution.live import ChunkWriter, tee
from hydra.model.access import Principal, Role
from hydra.model.records import Dispatched, Job
from hydra.model.status import RunStatus
from hydra.settings import Settings
from hydra.store.output_dir import OutputDir, file_stem
from tests.unit.test_livelog import Sink

ADMIN = Principal(user="rich", roles={"*": Role.ADMIN}, via="token:test")


def test_a_long_stream_ends_with_the_omitted_count_and_its_tail():
    sink = Sink()
    head = b"h" * 100
    with ChunkWriter("r1", limit=100, interval=5, insert=sink) as writer:
        writer.write("stdout", head + b"x" * 400_000)
        writer.write("stdout", b"more\nFINAL-ERROR-LINE\n")
    text = sink.text("stdout")
    assert text.startswith("h" * 100 + "\n[... hydra: stdout passed 100 bytes")
    total = 100 + 400_000 + len(b"more\nFINAL-ERROR-LINE\n")
    assert f"[... hydra: {total - 100 - 50} bytes of stdout omitted ...]\n" in text
    assert text.endswith("x" * (50 - 22) + "more\nFINAL-ERROR-LINE\n")
    assert sink.docs["r1/eof"]["stdout_bytes"] == total and sink.docs["r1/eof"]["stdout_cut"]


def test_when_the_tail_holds_all_the_rest_nothing_is_said_omitted():
    sink = Sink()
    with ChunkWriter("r2", limit=10, interval=5, insert=sink) as writer:
        writer.write("stderr", b"0123456789abc")
    assert sink.text("stderr").endswith("its end is kept ...]\nabc")
    assert "omitted" not in sink.text()


def test_stdout_and_stderr_keep_the_order_they_were_written_in_even_for_a_short_run():
    sink = Sink()
    with ChunkWriter("r3", limit=1000, interval=5, insert=sink, skip_if_unflushed=True) as writer:
        for i in range(3):
            writer.write("stdout", f"out{i}\n".encode())
            writer.write("stderr", f"err{i}\n".encode())
    assert [(c["stream"], c["text"]) for c in sink.chunks()] == [
        (stream, f"{word}{i}\n") for i in range(3) for stream, word in (("stdout", "out"), ("stderr", "err"))
    ]
    assert writer.stored == 6


def test_a_short_run_on_one_stream_still_stores_nothing():
    sink = Sink()
    with ChunkWriter("r4", limit=1000, interval=5, insert=sink, skip_if_unflushed=True) as writer:
        writer.write("stderr", b"only\n")
        writer.write("stderr", b"errors\n")
    assert sink.docs == {} and writer.stored == 0


def test_tee_hands_every_write_to_each_sink_in_order():
    seen: list[tuple[str, str, bytes]] = []
    write = tee(lambda s, d: seen.append(("a", s, d)), lambda s, d: seen.append(("b", s, d)))
    write("stdout", b"1")
    write("stderr", b"2")
    assert seen == [("a", "stdout", b"1"), ("b", "stdout", b"1"), ("a", "stderr", b"2"), ("b", "stderr", b"2")]


def test_the_output_dir_completes_a_file_only_when_closed_and_caps_it(tmp_path: Path):
    files = OutputDir(tmp_path, limit=10)
    writer = files.writer("run-1")
    writer.write("stdout", b"01234")
    writer.write("stderr", b"56789abc")
    assert files.open("run-1") is None  # still being written: not served
    writer.close()
    with files.open("run-1") as handle:
        assert handle.read() == b"0123456789\n[... hydra: 3 more bytes not kept (HYDRA_OUTPUT_DIR_LIMIT) ...]\n"
    assert (tmp_path / "run-1.log").stat().st_mode & 0o777 == 0o640
    files.delete("run-1")
    assert files.open("run-1") is None and not list(tmp_path.iterdir())


def test_a_run_id_never_names_a_path_outside_the_output_dir(tmp_path: Path):
    files = OutputDir(tmp_path / "out")
    for hostile in ("../../etc/passwd", "a/b", ".", "x" * 300, "\u2603"):
        assert files.path_of(hostile).parent == tmp_path / "out"
        assert file_stem(hostile).startswith("x-")
    assert file_stem("6f1c2a3e-uuid_like-1") == "6f1c2a3e-uuid_like-1"


def test_an_output_file_that_cannot_be_written_never_disturbs_the_command(tmp_path: Path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    writer = OutputDir(blocked).writer("r1")
    writer.write("stdout", b"data")
    writer.close()
    assert writer.failed


def test_the_output_dir_is_configured_by_its_setting(tmp_path: Path):
    assert OutputDir.configured(Settings()) is None
    files = OutputDir.configured(Settings(output_dir=str(tmp_path), output_dir_limit=5))
    assert files is not None and (files.root, files.limit) == (tmp_path, 5)


def _ended_run(memory, run_id: str, outcome: dict) -> None:
    job = Job(id="j1", name="j", user="rich", command="x")
    memory.pipeline.jobs._collection.insert_one(job.to_doc())
    memory.pipeline.runs.record(run_id, job, attempt=1, placement=Dispatched(run_id, RunStatus.QUEUED, "w", queue="q"))
    memory.pipeline.runs._collection.update_one({"_id": run_id}, {"$set": {"status": "failed", **outcome}})


def test_the_download_serves_the_stored_chunks_in_order(memory, monkeypatch):
    monkeypatch.setattr("hydra.control.output.OutputDir.configured", lambda: None)
    _ended_run(memory, "r1", {"live_chunks": 3})
    sink = Sink()
    with ChunkWriter("r1", limit=100, interval=5, insert=sink) as writer:
        writer.write("stdout", b"out\n")
        writer.write("stderr", b"err\n")
    memory.db["run_output"].insert_many(list(sink.docs.values()))
    _run, body, full = download(Reader(ADMIN, runs=memory.pipeline.runs), "r1")
    assert not full and b"".join(body) == b"out\nerr\n"


def test_the_download_of_a_short_run_is_its_record(memory, monkeypatch):
    monkeypatch.setattr("hydra.control.output.OutputDir.configured", lambda: None)
    _ended_run(memory, "r2", {"live_chunks": 0, "stdout": "hello\n"})
    _run, body, full = download(Reader(ADMIN, runs=memory.pipeline.runs), "r2")
    assert not full and b"".join(body) == b"hello\n"


def test_the_download_serves_the_full_output_when_it_is_kept(memory, monkeypatch, tmp_path):
    files = OutputDir(tmp_path)
    monkeypatch.setattr("hydra.control.output.OutputDir.configured", lambda: files)
    _ended_run(memory, "r3", {"live_chunks": 0, "stdout": "head [... omitted ...] tail"})
    with files.writer("r3") as writer:
        writer.write("stdout", b"every byte\n")
    _run, body, full = download(Reader(ADMIN, runs=memory.pipeline.runs), "r3")
    with body:
        assert full and body.read() == b"every byte\n"


def chunks(*texts: str) -> list[Chunk]:
    return [Chunk(seq=i, stream="stderr" if i % 2 else "stdout", text=t) for i, t in enumerate(texts)]


@pytest.mark.parametrize(
    ("texts", "count", "expected"),
    [
        (("a\nb", "\nc\n"), 2, ["a\nb", "\n"]),
        (("a\nb\n",), 1, ["a\n"]),
        (("a", "b"), 1, ["a", "b"]),  # no newline at all: one line, all of it
        (("a\n", "b\n"), 0, []),
        (("a\n", "b\n"), 5, ["a\n", "b\n"]),
    ],
)
def test_first_lines(texts, count, expected):
    assert [c.text for c in first_lines(chunks(*texts), count)] == expected


@pytest.mark.parametrize(
    ("texts", "count", "expected"),
    [
        (("a\nb", "\nc\n"), 2, ["b", "\nc\n"]),
        (("a\nb\nc",), 1, ["c"]),  # text after the last newline is the last line
        (("a\nb\n",), 1, ["b\n"]),
        (("a\n", "b\n"), 5, ["a\n", "b\n"]),
        (("x\n", "y\n", ""), 1, ["y\n", ""]),
        (("a\n",), 0, []),
    ],
)
def test_last_lines(texts, count, expected):
    assert [c.text for c in last_lines(chunks(*texts), count)] == expected


def test_lines_keep_each_chunks_stream():
    cut = last_lines(chunks("o1\n", "e1\n", "o2\n"), 2)
    assert [(c.stream, c.text) for c in cut] == [("stderr", "e1\n"), ("stdout", "o2\n")]
