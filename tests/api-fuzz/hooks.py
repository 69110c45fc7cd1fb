"""schemathesis hooks of scripts/api-fuzz.

Two rules the fuzzer cannot learn from the OpenAPI document, and one check stricter than
schemathesis's own. Every built-in check stays on, and negative (schema-violating)
requests are sent as generated.
"""

import datetime
import os
import uuid

import schemathesis

# The id of the personal API token the fuzzer authenticates with (scripts/api-fuzz).
OWN_TOKEN_ID = os.environ["CONVENE_FUZZ_TOKEN_ID"]

# A search window must end ahead, be at least as long as the meeting (at most 12 hours) and
# at most 90 days (crates/domain/src/meeting.rs, `check_window`): rules relative to the
# moment of the request and across fields, which JSON Schema cannot state.
MIN_WINDOW = datetime.timedelta(hours=12)
MAX_WINDOW = datetime.timedelta(days=90)
WINDOW_OPERATIONS = {
    ("POST", "/api/v1/availability"),
    ("POST", "/api/v1/meetings"),
    ("POST", "/api/v1/meetings/{id}/reschedule"),
}


def _instant(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _window_ahead(window):
    """A schema-valid window moved to start tomorrow, keeping its length when it is a valid one."""
    start, end = _instant(window.get("start")), _instant(window.get("end"))
    if start is None or end is None:
        return
    length = end - start
    if not MIN_WINDOW <= length <= MAX_WINDOW:
        length = datetime.timedelta(days=7)
    tomorrow = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=1)
    window["start"] = tomorrow.isoformat().replace("+00:00", "Z")
    window["end"] = (tomorrow + length).isoformat().replace("+00:00", "Z")


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = (case.operation.method.upper(), case.operation.path)
    # Revoking the fuzzer's own token would turn every later request into a 401. Any other
    # token (those the run creates with POST /api/v1/tokens) is fair game.
    if operation == ("DELETE", "/api/v1/tokens/{id}") and str(case.path_parameters.get("id")) == OWN_TOKEN_ID:
        case.path_parameters["id"] = str(uuid.uuid4())
    meta = case.meta
    if (
        operation in WINDOW_OPERATIONS
        and meta is not None
        and meta.generation.mode.is_positive
        and isinstance(case.body, dict)
        and isinstance(case.body.get("window"), dict)
    ):
        _window_ahead(case.body["window"])


@schemathesis.check
def positive_data_fits_its_schema(ctx, response, case):
    """A schema-valid request is never refused for its shape.

    Where tests/api-fuzz/schemathesis.toml lets positive_data_acceptance accept a 422 (a
    domain rule the schema cannot state), the refusal must be one of those rules, never
    `/problems/invalid-body` (the document and the body's type disagree) nor
    `/problems/invalid-time` (a `date-time` the document admits could not be read).
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        kind = response.json().get("type")
    except ValueError:
        kind = None
    if kind in ("/problems/invalid-body", "/problems/invalid-time"):
        raise AssertionError(f"A schema-valid request was refused for its shape: {response.text[:500]}")
    return None
