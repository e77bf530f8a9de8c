"""``shared_dict`` values as plain JSON: reading a checkpoint never executes code (no pickle).

JSON types are stored as they are. ``tuple``, ``set``, ``frozenset``, ``bytes``, ``datetime``, ``date``,
``time``, ``timedelta``, ``Decimal``, ``UUID``, ``Path``, ``Enum`` members (by value), dicts with non-string
keys, pydantic models and dataclasses (restored as dicts) are tagged. Anything else cannot be restored:
it is stored as its ``repr`` and dropped, with a warning, when a run resumes.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from pathlib import PurePath
from typing import Any, Callable, Optional

TAG = "__fm__"


class Unrestorable:
    def __init__(self, type_name: str, text: str) -> None:
        self.type_name = type_name
        self.text = text


def encode(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)) and not isinstance(v, enum.Enum):
        return v
    if isinstance(v, list):
        return [encode(x) for x in v]
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v) and TAG not in v:
            return {k: encode(x) for k, x in v.items()}
        return {TAG: "dict", "v": [[encode(k), encode(x)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {TAG: "tuple", "v": [encode(x) for x in v]}
    if isinstance(v, (set, frozenset)):
        items = [encode(x) for x in v]
        return {TAG: "frozenset" if isinstance(v, frozenset) else "set", "v": items}
    if isinstance(v, (bytes, bytearray)):
        return {TAG: "bytes", "v": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, dt.datetime):
        return {TAG: "datetime", "v": v.isoformat()}
    if isinstance(v, dt.date):
        return {TAG: "date", "v": v.isoformat()}
    if isinstance(v, dt.time):
        return {TAG: "time", "v": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {TAG: "timedelta", "v": v.total_seconds()}
    if isinstance(v, decimal.Decimal):
        return {TAG: "decimal", "v": str(v)}
    if isinstance(v, uuid.UUID):
        return {TAG: "uuid", "v": str(v)}
    if isinstance(v, PurePath):
        return {TAG: "path", "v": str(v)}
    if isinstance(v, enum.Enum):
        return encode(v.value)
    dump = getattr(v, "model_dump", None)
    if callable(dump):
        if _holds_secret(dump()):  # its JSON form masks the secret: it would come back as "**********"
            return {TAG: "unrestorable", "type": f"{type(v).__qualname__}, which holds a secret", "v": ""}
        return encode(dump(mode="json"))
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return encode(dataclasses.asdict(v))
    if _holds_secret(v):
        return {TAG: "unrestorable", "type": f"{type(v).__qualname__}, a secret", "v": ""}
    return {TAG: "unrestorable", "type": type(v).__qualname__, "v": repr(v)[:200]}


def encode_value(v: Any) -> Any:
    """A ``shared_dict`` value as stored: all of it restorable, or marked unrestorable as a whole, so a value
    that held a secret (or anything else that cannot be stored) never comes back without it."""
    out = encode(v)
    lost = _lossy(out)
    if lost and not (isinstance(out, dict) and out.get(TAG) == "unrestorable"):
        return {TAG: "unrestorable", "type": f"{type(v).__qualname__} holding {lost}", "v": ""}
    return out


def _lossy(encoded: Any) -> str:
    """What in ``encoded`` could not be stored ('' if nothing)."""
    if isinstance(encoded, list):
        return next((x for x in map(_lossy, encoded) if x), "")
    if isinstance(encoded, dict):
        if encoded.get(TAG) == "unrestorable":
            return str(encoded.get("type") or "a value")
        return next((x for x in map(_lossy, encoded.values()) if x), "")
    return ""


def _holds_secret(v: Any) -> bool:
    from pydantic import SecretBytes, SecretStr

    if isinstance(v, (SecretStr, SecretBytes)):
        return True
    if isinstance(v, dict):
        return any(_holds_secret(x) for x in v.values())
    if isinstance(v, (list, tuple, set, frozenset)):
        return any(_holds_secret(x) for x in v)
    return False


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "dict": lambda v: {decode(k): decode(x) for k, x in v},
    "tuple": lambda v: tuple(decode(x) for x in v),
    "set": lambda v: {decode(x) for x in v},
    "frozenset": lambda v: frozenset(decode(x) for x in v),
    "bytes": lambda v: base64.b64decode(v),
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(seconds=v),
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "path": PurePath,
}


def decode(v: Any) -> Any:
    """The value ``encode`` stored; ``ValueError`` for anything ``encode`` does not write."""
    if isinstance(v, list):
        return [decode(x) for x in v]
    if isinstance(v, dict):
        tag = v.get(TAG)
        if tag is None:
            return {k: decode(x) for k, x in v.items()}
        if tag == "unrestorable":
            return Unrestorable(str(v.get("type")), str(v.get("v")))
        decoder: Optional[Callable[[Any], Any]]
        if tag == "path":
            from pathlib import Path

            decoder = Path
        else:
            decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
        if decoder is None or "v" not in v:
            raise ValueError(f"a shared_dict value with an unknown tag {str(tag)[:40]!r}")
        try:
            return decoder(v["v"])
        except Exception as exc:  # noqa: BLE001 - whatever the type's constructor says, it is damage
            raise ValueError(f"a shared_dict value tagged {tag!r} cannot be read back ({type(exc).__name__})") from None
    return v
