"""Which IB client library this environment would use, found without importing it.

Importing ib_insync or ib_async is slow and may warn, so ``ibledger --version`` and ``doctor``-style
reports ask the installed distributions instead. The rule is the one ``ledger.ib.library`` applies:
``IBLEDGER_IB_LIB`` if set, else ib_insync if installed, else ib_async.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

SUPPORTED = ("ib_insync", "ib_async")
EXTRAS_HINT = "pip install 'ibledger[ib_insync]' or 'ibledger[ib_async]'"


def installed() -> dict[str, str]:
    """Supported libraries that can be imported here, with their installed version."""
    found: dict[str, str] = {}
    for name in SUPPORTED:
        if importlib.util.find_spec(name) is None:
            continue
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "unknown"
    return found


def chosen() -> str | None:
    """The library ``ledger.ib.library`` will import, or None when none is usable."""
    wanted = os.environ.get("IBLEDGER_IB_LIB", "").strip()
    have = installed()
    if wanted:
        return wanted if wanted in have else None
    return next((n for n in SUPPORTED if n in have), None)


def library_description() -> str:
    have = installed()
    name = chosen()
    if name is None:
        wanted = os.environ.get("IBLEDGER_IB_LIB", "").strip()
        why = f"IBLEDGER_IB_LIB={wanted} is not installed" if wanted else "no IB client library installed"
        return f"{why}; {EXTRAS_HINT}"
    return f"{name} {have[name]}"
