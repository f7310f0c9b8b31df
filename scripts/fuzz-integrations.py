"""Fuzzes the integration routes the OpenAPI document leaves out (signed webhooks, cron, pushes).

Posts generated bodies (JSON of any shape with the keys the receivers read, or raw bytes) and
headers (the signature, tenant and cron headers, printable values) to each route, unsigned and
unauthenticated, and counts the answers >= 500. Run by scripts/fuzz-api.sh:

    python fuzz-integrations.py BASE_URL EXAMPLES [SEED]

Exits 1 when any request got a 5xx (the first ten are printed).
"""

import json
import sys
import urllib.error
import urllib.request

from hypothesis import HealthCheck, given, seed, settings, strategies as st

BASE = sys.argv[1]
EXAMPLES = int(sys.argv[2])
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else None

PATHS = [
    "/api/integrations/medusa/webhook",
    "/api/integrations/fleetbase/webhook",
    "/api/integrations/erpnext/webhook",
    "/api/cron/sync",
    "/api/cron/webhook-retry",
    "/api/cron/reconcile",
    "/api/integrations/payload/push-to-medusa",
    "/api/integrations/payload/reconcile",
]
# The keys the receivers read for event types, ids and tenant hints.
RECEIVER_KEYS = [
    "type", "event", "id", "data", "tenant_id", "store_id", "metadata", "doctype", "name",
    "modified", "custom_tenant_id", "custom_store_id", "meta", "created_at", "api_version",
]
KEYS = st.sampled_from(RECEIVER_KEYS) | st.text(max_size=8)
# Text that has broken servers before, mixed into the generated text: NUL characters (which
# PostgreSQL's text cannot hold), lone surrogates, long and numeric-looking strings.
SPECIAL_TEXT = st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "\U0001d4d0", "x" * 5000, "9" * 40, "-1", "1e400", "../", "%00"]
)
SCALARS = (
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False) | st.text() | SPECIAL_TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=20,
)
# A delivery: an object where each key a receiver reads may be present, with any value.
DELIVERY = st.fixed_dictionaries({}, optional={k: JSON for k in RECEIVER_KEYS})
HEADER_NAMES = st.sampled_from(
    ["webhook-id", "webhook-timestamp", "webhook-signature", "x-medusa-signature", "signature",
     "x-frappe-webhook-signature", "x-tenant-id", "x-store-id", "authorization", "x-cron-secret",
     "content-type"]
)
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)

failures = []


def post(path, data, headers):
    req = urllib.request.Request(BASE + path, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status
    except urllib.error.HTTPError as e:
        return e.code


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    path=st.sampled_from(PATHS),
    body=DELIVERY | JSON | st.binary(max_size=200),
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=5),
)
def deliveries(path, body, headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status = post(path, data, headers)
    if status >= 500:
        failures.append((status, path, headers, data[:300]))


if SEED is not None:
    deliveries = seed(SEED)(deliveries)
deliveries()
print(f"{EXAMPLES} requests, server errors: {len(failures)}")
for failure in failures[:10]:
    print(failure)
sys.exit(1 if failures else 0)
