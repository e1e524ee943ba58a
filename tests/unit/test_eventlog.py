"""The event log reader: clean stops at a truncated tail, clear errors on damage."""

from __future__ import annotations

import os

import numpy as np
import pytest

from eventroll import codec
from eventroll.errors import CodecError
from eventroll.events import Custom, EpisodeStart
from eventroll.recorders.base import Records
from eventroll.recorders.eventlog import EventLogReader, EventLogRecorder, read_events


def write_log(path: str, n: int, shape: tuple[int, ...] = (4,), wide: bool = False) -> str:
    """An event log of ``n`` episode.start records, observation ``seq`` of float32 ``shape``
    (float64 with ``wide``)."""
    recorder = EventLogRecorder(path, run_id="r1")
    for seq in range(n):
        event = EpisodeStart(episode=seq, env_seed=seq, agent_seed=seq,
                             observation=np.full(shape, seq, np.float64 if wide else np.float32)
                             + np.arange(shape[-1], dtype=np.float32),
                             worker=0, wseq=seq)
        record = codec.prepend_fields(codec.encode(event.to_record()), {"seq": seq})
        recorder.handle_records(Records(seq, 1, [record]))
    recorder.close()
    return path


@pytest.fixture
def log_path(tmp_path):
    return write_log(str(tmp_path / "events.msgpack"), 5)


class TestEventLogReader:
    def test_reads_header_and_events(self, log_path):
        """The reader yields every event with its seq and restores numpy arrays."""
        reader = EventLogReader(log_path)
        events = list(reader)
        assert reader.header["run_id"] == "r1" and reader.header["format"] == "eventroll-events"
        assert [e.seq for e in events] == list(range(5))
        np.testing.assert_array_equal(events[3].observation, np.arange(4, dtype=np.float32) + 3)
        assert reader.truncated_bytes == 0

    def test_plain_msgpack_readers_can_read_it(self, log_path):
        """The file is a plain stream of msgpack maps."""
        import msgpack

        records = list(msgpack.Unpacker(open(log_path, "rb"), raw=False))
        assert records[0]["format"] == "eventroll-events"
        assert [r["kind"] for r in records[1:]] == ["episode.start"] * 5

    @pytest.mark.parametrize("cut", [1, 7, 30])
    def test_truncated_tail_stops_cleanly(self, log_path, cut):
        """A log cut inside its last record yields the complete records and counts the rest."""
        data = open(log_path, "rb").read()
        with open(log_path, "wb") as file:
            file.write(data[:-cut])
        reader = EventLogReader(log_path)
        events = list(reader)
        assert [e.seq for e in events] == [0, 1, 2, 3]
        assert reader.truncated_bytes > 0

    def test_not_a_log(self, tmp_path):
        """A file without the header is named as not an event log."""
        path = tmp_path / "x.msgpack"
        path.write_bytes(codec.encode({"hello": 1}))
        with pytest.raises(CodecError, match="not an eventroll event log"):
            list(read_events(path))

    def test_damaged_record_names_its_offset(self, tmp_path):
        """A record that cannot be decoded raises CodecError naming the byte offset."""
        path = tmp_path / "events.msgpack"
        header = codec.encode({"format": "eventroll-events", "version": 1, "run_id": "r"})
        path.write_bytes(header + codec.encode(Custom(name="x").to_record()) + b"\xc1")
        record = codec.encode(Custom(name="x").to_record())
        at = len(header) + len(record)
        with pytest.raises(CodecError, match=rf"malformed record at byte {at} \(FormatError\); "
                                             "`eventroll validate` shows"):
            list(read_events(path))

    def test_a_long_log_is_read_as_it_is_taken(self, tmp_path):
        """subscribe() over a finished run holds about a chunk of the log at a time, not
        the log: 40 records of 512 KiB (20 MiB) read within 8 MiB of memory (all of it
        before)."""
        import tracemalloc

        from eventroll.live import subscribe

        path = write_log(str(tmp_path / "events.msgpack"), 40, (256, 256), wide=True)
        tracemalloc.start()
        try:
            seqs = [event.seq for event in subscribe(tmp_path, follow=False)]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert seqs == list(range(40))
        assert os.path.getsize(path) > 20_000_000 and peak < 8 << 20, peak

    def test_records_left_untaken_come_with_the_next_call(self, log_path):
        """appended() yields what was written since the last call, and what a caller
        left untaken then."""
        reader = EventLogReader(log_path)
        try:
            first = reader.appended()
            assert [next(first)["seq"], next(first)["seq"]] == [0, 1]
            first.close()
            assert [record["seq"] for record in reader.appended()] == [2, 3, 4]
            assert list(reader.appended()) == []
        finally:
            reader.close()

    def test_never_overwrites(self, log_path):
        """The recorder refuses to open an existing log."""
        with pytest.raises(FileExistsError):
            EventLogRecorder(log_path, run_id="again")


@pytest.mark.parametrize("before", [b"\xde\x00", b"\xdf\x00\x00\x00", b"\x01\x02"])
def test_resync_finds_a_record_behind_a_false_start_that_overlaps_it(before):
    """Bytes of a damaged record that look like the start of a map16/map32 whose key
    bytes overlap the next record's own start must not hide that record."""
    from eventroll.validation import _next_record
    record = codec.encode({"seq": 7, "kind": "custom", "worker": 0, "wseq": 3, "time": 0.0,
                           "name": "x"})
    data = b"\x00" + before + record
    assert _next_record(data, 1) == 1 + len(before)
