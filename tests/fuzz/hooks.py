"""Schemathesis hooks of scripts/fuzz-api (loaded through SCHEMATHESIS_HOOKS).

If-Match: PATCH /connectors/{id} requires the connector's current version and the function
checks it before it reads the body, so a generated version ("3", the documented example) makes
almost every PATCH a 412 and the body is never tested. When the generated If-Match is
well-formed (`"N"`, `W/"N"` or `N`) and the connector exists, this hook puts the connector's
current version in it, in the same form; a malformed one (400 invalid_header) or a missing one
(428) is sent as generated. DELETE is left alone (its If-Match is optional, and a 412 there is
worth testing too). The version is read with a GET through the same front (FUZZ_FRONT_URL) as
the same tenant (FUZZ_TEST_TENANT); without a tenant (the anonymous run) nothing changes.
"""

from __future__ import annotations

import os
import re

import requests
import schemathesis

FRONT_URL = os.environ.get("FUZZ_FRONT_URL", "").rstrip("/")
TENANT = os.environ.get("FUZZ_TEST_TENANT", "")
VERSION = re.compile(r'\A(W/)?("?)(\d{1,18})\2\Z')
_session = requests.Session()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not (FRONT_URL and TENANT) or case.method.upper() != "PATCH":
        return
    if case.operation.path != "/connectors/{id}" or not case.headers:
        return
    name = next((k for k in case.headers if k.lower() == "if-match"), None)
    if name is None or not isinstance(case.headers[name], str):
        return
    found = VERSION.match(case.headers[name])
    connector_id = (case.path_parameters or {}).get("id")
    if not found or not isinstance(connector_id, str):
        return
    try:
        answer = _session.get(
            f"{FRONT_URL}/connectors/{requests.utils.quote(connector_id, safe='')}",
            headers={"x-test-tenant": TENANT, "x-fuzz-hook": "if-match"},
            timeout=40,
        )
    except requests.RequestException:
        return
    etag = answer.headers.get("ETag", "")
    current = re.search(r"\d+", etag) if answer.status_code == 200 else None
    if current:
        weak, quote, _ = found.groups()
        case.headers[name] = f"{weak or ''}{quote}{current.group(0)}{quote}"
