"""Session anchors: signed session heads kept outside the database, so a database writer cannot forge history.

The hash chain inside the store (``sha256(prev + state)`` per session, kept in the head row) catches an
edit made around the store's API, but not one made by someone who can also rewrite the head row: edit a
row and recompute the chain, delete a whole session with its head, or delete the last rows and re-chain.
An anchor closes that hole. ``ibledger anchor`` appends one line per session to a file *outside* the
database: session id, last seq, event count and the chain head at that seq, signed with HMAC-SHA256
under a key that lives in its own file (mode 0600, created on first use, never in the store, never
printed). ``ibledger verify --anchor FILE`` recomputes each session's chain from the stored rows up to
the anchored seq and compares.

Detected (for every session anchored): the session deleted; events at or before the anchored seq
altered, removed, inserted or re-chained; the session truncated below the anchored seq; an anchor line
edited or forged without the key. Not detected: anything after a session's last anchor (anchor again
after a session ends), a store rewritten by someone who also holds the key file, and an anchor file
truncated or deleted as a whole (keep it append-only, e.g. ``chattr +a``, or copy it off the host).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

import msgspec
from msgspec import Struct

from ledger.store.base import EventStore, SessionHead, StoreError

KEY_ENV = "IBLEDGER_KEY_FILE"
KEY_BYTES = 32
MAX_LINE = 4096  # an anchor line is ~300 bytes; anything longer is not one
MAX_FILE_BYTES = 512 * 1024 * 1024


class AnchorError(StoreError):
    """The anchor file or key cannot be used (missing, unreadable, loose permissions, not an anchor file)."""


class Anchor(Struct, frozen=True, kw_only=True):
    """One signed session head. ``mac`` signs every other field (in this order)."""

    v: int = 1
    session_id: str
    last_seq: int
    events: int
    chain: str  # hex sha256 chain head at last_seq
    anchored_ns: int  # wall clock when anchored (a note for people; not used by checks)
    mac: str = ""


class AnchorCheck(Struct, kw_only=True):
    """What ``verify --anchor`` found: per-session problems and lines that fail their signature."""

    file: str
    lines: int = 0
    sessions: int = 0
    problems: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.problems


def default_key_file() -> Path:
    env = os.environ.get(KEY_ENV)
    if env is not None and env.strip():
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ibledger" / "anchor.key"


def load_key(path: Path | None = None, *, create: bool) -> bytes:
    """The HMAC key; created (0600) on first use when ``create``. Refuses a key others can read."""
    path = Path(path) if path is not None else default_key_file()
    if not path.exists():
        if not create:
            raise AnchorError(
                f"anchor key {path} does not exist: use the key file the anchors were written with "
                f"(--key-file or ${KEY_ENV})"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(KEY_BYTES) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError as exc:
            raise AnchorError(f"cannot create anchor key {path}: {exc.strerror or exc}") from None
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise AnchorError(f"anchor key {path} is not a regular file")
        if st.st_mode & 0o077:
            raise AnchorError(
                f"anchor key {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): chmod 600 {path}"
            )
        text = path.read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, AnchorError):
            raise
        raise AnchorError(f"anchor key {path} cannot be read as a hex key ({type(exc).__name__})") from None
    if len(key) < 16:
        raise AnchorError(f"anchor key {path} is too short ({len(key)} bytes; at least 16)")
    return key


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Anchor)


def _mac(key: bytes, a: Anchor) -> str:
    body = _enc.encode(msgspec.structs.replace(a, mac=""))
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def sign(key: bytes, head: SessionHead, now_ns: int) -> Anchor:
    a = Anchor(session_id=head.session_id, last_seq=head.last_seq, events=head.events, chain=head.chain.hex(),
               anchored_ns=now_ns)
    return msgspec.structs.replace(a, mac=_mac(key, a))


def append_anchors(path: Path, anchors: Iterable[Anchor]) -> int:
    """Append lines (O_APPEND, fsync): earlier anchors are never rewritten."""
    data = b"".join(_enc.encode(a) + b"\n" for a in anchors)
    if not path.parent.is_dir():
        raise AnchorError(f"cannot write anchors to {path}: directory {path.parent} does not exist")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise AnchorError(f"cannot append anchors to {path}: {exc.strerror or exc}") from None
    return data.count(b"\n")


def anchor_store(store: EventStore, path: Path, key: bytes, now_ns: int) -> int:
    """Sign every session's current head and append it to ``path``; return how many were written."""
    return append_anchors(path, [sign(key, h, now_ns) for h in store.session_heads()])


def read_anchors(path: Path, key: bytes, check: AnchorCheck) -> dict[str, Anchor]:
    """The latest valid anchor per session; a line that fails its signature is a problem, not an anchor."""
    try:
        st = path.stat()
    except OSError as exc:
        raise AnchorError(f"cannot read anchor file {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise AnchorError(f"anchor file {path} is not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise AnchorError(f"anchor file {path} is larger than {MAX_FILE_BYTES} bytes: not an anchor file")
    latest: dict[str, Anchor] = {}
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            check.lines += 1
            if len(line) > MAX_LINE:
                check.problems.append(f"{path}:{n}: line longer than {MAX_LINE} bytes: not an anchor")
                continue
            if not line.strip():
                continue
            try:
                a = _dec.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                check.problems.append(f"{path}:{n}: not an anchor line ({exc})")
                continue
            if not hmac.compare_digest(a.mac, _mac(key, a)):
                check.problems.append(
                    f"{path}:{n}: signature does not match (line edited or forged, or another key) for session "
                    f"{a.session_id}"
                )
                continue
            prev = latest.get(a.session_id)
            if prev is None or a.last_seq >= prev.last_seq:
                latest[a.session_id] = a
    check.sessions = len(latest)
    return latest
