"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``): the tester behaves as the API asks a client to.

An ``Idempotency-Key`` is new for each distinct request (the document says so; JSON Schema cannot): a
generated key of a valid length is replaced by a fresh UUID before the call, so that two generated requests
never share one and the second is not, rightly, refused as a reuse. Keys of an invalid length stay as generated.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis
from schemathesis.generation.meta import CoverageScenario

from services.profile.shared.web.idempotency import MAX_KEY_LENGTH

IDEMPOTENCY_KEY = "Idempotency-Key"


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    # A case that leaves out a required parameter checks that the request is refused: it stays as generated.
    data = getattr(getattr(case.meta, "phase", None), "data", None)
    if getattr(data, "scenario", None) == CoverageScenario.MISSING_PARAMETER:
        return
    key = (case.headers or {}).get(IDEMPOTENCY_KEY)
    if isinstance(key, str) and 1 <= len(key) <= MAX_KEY_LENGTH:
        case.headers[IDEMPOTENCY_KEY] = str(uuid.uuid4())
