"""``python -m ledger``: the same as the ``ibledger`` command."""

from ledger.cli import main

main()
