"""The run journal: store, events, replay, durable private-file helpers."""
