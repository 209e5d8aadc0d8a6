"""The pure core: events, codecs, derived ids, the status table, the order fold, the governor and the engine.

Nothing here imports an IB client library, the store or the wall clock: time and ids come from the events,
so live recording, replay and tests run the very same functions."""
