"""Schemathesis hooks for Ironbridge's run (loaded by run.py through SCHEMATHESIS_HOOKS).

`cursor` is opaque and signed: only a `next_cursor` the server issued is valid, which no
schema can state, so generated requests leave it out (the pagination suites test cursors).
A time window whose start is not before its end is refused (`modified_after` must be before
`modified_before`), which JSON Schema cannot relate either: such a pair loses its end."""

from datetime import datetime

import schemathesis


def _instant(value):
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError, TypeError):
        return None


@schemathesis.hook
def map_query(ctx, query):
    if not isinstance(query, dict):
        return query
    query.pop("cursor", None)
    after, before = _instant(query.get("modified_after")), _instant(query.get("modified_before"))
    if after is not None and before is not None:
        try:
            if after >= before:
                query.pop("modified_before")
        except TypeError:
            pass
    return query
