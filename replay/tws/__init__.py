"""A wire-level TWS stand-in: the socket protocol, the broker's truth, quirk scenarios and wire replay, plus the
paper broker around the order flow (request table, instruments, market, account).

It shares only the event types and the session-file format with the ledger, so it can never mask a ledger bug."""
