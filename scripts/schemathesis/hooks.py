"""Schemathesis hooks for Ironbridge's run (named by `hooks` in schemathesis.toml).

Two constraints of the API relate a parameter to something JSON Schema cannot name:

* `cursor` is opaque and signed: only a `next_cursor` the server issued is valid (any other
  value is refused with `INVALID_CURSOR`), so a request meant to be valid leaves it out (the
  pagination suites test cursors).
* A time window's start must be before its end (`modified_after` < `modified_before`,
  `recorded_after` < `recorded_before`, refused with `INVALID_REQUEST` otherwise); a schema
  cannot compare two parameters, so a request meant to be valid whose window is empty or
  reversed loses its end.

* An `Idempotency-Key` names one request for 24 hours: the same key with another body is
  refused (`IDEMPOTENCY_KEY_REUSED`), so a request meant to be valid carries a key of its
  own.

These are `map_case` hooks because every phase (examples, coverage, fuzzing) applies them,
while the coverage phase skips per-component hooks such as `map_query`. Only cases generated
as valid are changed: a case meant to be refused keeps whatever it was generated with, so the
refusal checks still see the server refuse a bad cursor or window."""

import uuid
from datetime import datetime

import schemathesis


def _instant(value):
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (AttributeError, ValueError, TypeError):
        return None


def _generated_valid(case):
    meta = getattr(case, "meta", None)
    return meta is None or not meta.generation.mode.is_negative


@schemathesis.hook
def map_case(ctx, case):
    headers = case.headers
    if headers is not None and hasattr(headers, "keys") and _generated_valid(case):
        for name in list(headers.keys()):
            if str(name).lower() == "idempotency-key":
                changed = dict(headers)
                changed[name] = str(uuid.uuid4())
                case.headers = changed
    query = case.query
    if not isinstance(query, dict) or not _generated_valid(case):
        return case
    changed = dict(query)
    changed.pop("cursor", None)
    for start, end in (("modified_after", "modified_before"), ("recorded_after", "recorded_before")):
        after = _instant(changed.get(start))
        before = _instant(changed.get(end))
        if after is not None and before is not None:
            try:
                if after >= before:
                    changed.pop(end)
            except TypeError:
                pass
    if changed != query:
        case.query = changed
    return case
