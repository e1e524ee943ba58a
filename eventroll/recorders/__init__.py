"""Recorders: durable subscribers that each build one artifact."""

from eventroll.recorders.eventlog import EventLogReader, EventLogRecorder, read_events

__all__ = ["EventLogReader", "EventLogRecorder", "read_events"]
