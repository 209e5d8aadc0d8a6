"""The TWS stand-in's parts beyond the order flow: request table, instruments, market, account."""
