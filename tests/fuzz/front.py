#!/usr/bin/env python3
"""A stand-in for API Gateway (HTTP API, payload format 2.0) in front of the local functions.

It lets an HTTP client such as schemathesis talk to `connector-api` as if it were deployed:
every HTTP request is turned into the API Gateway v2 event the function receives in AWS, the
function is called through the Lambda Invoke API (`cargo lambda watch`, started by
`scripts/local-stack up`), and its API Gateway v2 response becomes the HTTP response.

    python3 tests/fuzz/front.py --env-file .local-stack/env [--port 0] [--log requests.jsonl]

What it does, like API Gateway:
  * routes: the routes of docs/openapi.json (which a unit test keeps equal to the function's
    route table and template.yaml's HttpApi routes); a request whose method and path match none
    of them is answered 404 {"message": "Not Found"} by the front itself, before authorization
    and without invoking the function, as API Gateway does for an HTTP API without a $default
    route; a matched one gets routeKey ("GET /connectors/{id}") and pathParameters (decoded);
  * headers lower-cased, repeated headers joined with ","; `Cookie` goes to `cookies`;
    queryStringParameters decoded, repeated names joined with ","; rawPath and rawQueryString
    as received; requestContext with http.method/path/protocol/sourceIp/userAgent, requestId,
    stage "$default", time and timeEpoch;
  * a body that is valid UTF-8 is passed as is, any other body base64-encoded with
    isBase64Encoded=true;
  * every method is accepted (also ones http.server does not know, e.g. QUERY: no route has
    them, so 404); a header value with a control character (NUL...) is refused with 400
    {"message": "Bad Request"}, and a body over 6 MB (the Lambda payload limit) with 413,
    without invoking the function;
  * the response: statusCode, headers (multiValueHeaders for names not in headers), cookies
    (one Set-Cookie each), body (base64-decoded when isBase64Encoded); a result without
    statusCode is a 200 application/json of that result, as API Gateway infers.

What it does differently, for tests:
  * authentication: there is no JWT. A request with `x-test-tenant: T` carries the verified
    claims {TENANT_CLAIM: T, "sub": "fuzz", "iss": ...} in requestContext.authorizer.jwt, as if
    API Gateway's JWT authorizer had accepted a token; without that header there is no
    authorizer at all (the function must answer 401 itself). The header is not forwarded,
    nor is x-fuzz-hook (marks the requests of tests/fuzz/hooks.py in the --log).
    With --gateway-auth, a request without `Authorization: Bearer <any token>` is refused
    first with 401 {"message": "Unauthorized"}, as the JWT authorizer does (the token itself
    is not checked), so checks about missing credentials see what clients would see.
  * while the Invoke API refuses connections (the local functions restart) it retries for up
    to --unreachable-wait seconds: nothing was delivered, and API Gateway never sees that;
  * when the invocation fails (function error, a non-200 answer of the Invoke API, a result that
    is not an API Gateway response, no answer) it answers HTTP 502 (504 when the function did not
    answer within --invoke-timeout) with a JSON body {"message", "front_error": {...}} that says
    why, so a fuzzer counts it as a server error, as API Gateway answers 500/502/503 then.

Python 3.11 standard library only. It prints `listening on http://127.0.0.1:PORT` on stdout
once it accepts connections (and writes PORT to --port-file when given).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_TENANT_HEADER = "x-test-tenant"
# Set by tests/fuzz/hooks.py on its own requests, so the request log tells them apart.
HOOK_HEADER = "x-fuzz-hook"
# API Gateway's own payload limit for HTTP APIs is 10 MB; the Lambda sync invoke limit is 6 MB.
MAX_BODY_BYTES = 6 * 1024 * 1024
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
# Response headers that describe the connection, not the response: ours are written by us.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip('"')
    return values


class Route:
    """One route of the OpenAPI document: method, template, and a matcher on the raw path."""

    def __init__(self, method: str, template: str):
        self.method = method.upper()
        self.template = template
        self.names: list[str] = []
        pattern = ""
        for part in re.split(r"(\{[^}/]+\})", template):
            if part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                greedy = name.endswith("+")
                self.names.append(name.rstrip("+"))
                # A path variable is one non-empty segment ({proxy+}: the rest of the path).
                pattern += "(.+)" if greedy else "([^/]+)"
            else:
                pattern += re.escape(part)
        self.regex = re.compile(pattern + r"\Z")

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    def match(self, raw_path: str) -> dict[str, str] | None:
        found = self.regex.match(raw_path)
        if not found:
            return None
        return {
            name: urllib.parse.unquote(value) for name, value in zip(self.names, found.groups())
        }


def load_routes(openapi: Path) -> list[Route]:
    document = json.loads(openapi.read_text())
    routes = []
    for template, item in document.get("paths", {}).items():
        for method in item:
            if method.upper() in HTTP_METHODS:
                routes.append(Route(method, template))
    # Literal routes first, so "/connectors/x" never shadows a literal sibling.
    routes.sort(key=lambda r: (len(r.names), r.template))
    return routes


class InvokeFailure(Exception):
    def __init__(self, status: int, kind: str, detail: str, **extra):
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.extra = extra


class Front:
    def __init__(self, args: argparse.Namespace):
        env = read_env_file(Path(args.env_file))
        endpoint = args.lambda_endpoint or env.get("LAMBDA_ENDPOINT_URL")
        if not endpoint:
            raise SystemExit(f"front: LAMBDA_ENDPOINT_URL is not in {args.env_file}")
        self.invoke_url = (
            endpoint.rstrip("/")
            + "/2015-03-31/functions/"
            + urllib.parse.quote(args.function, safe="")
            + "/invocations"
        )
        self.tenant_claim = env.get("TENANT_CLAIM") or "tenant_id"
        self.routes = load_routes(Path(args.openapi))
        self.invoke_timeout = args.invoke_timeout
        self.unreachable_wait = args.unreachable_wait
        self.gateway_auth = args.gateway_auth
        self.log_lock = threading.Lock()
        self.log_file = open(args.log, "a", buffering=1) if args.log else None
        self.quiet = args.quiet

    # -- request -> event ---------------------------------------------------------------------

    def route_for(self, method: str, raw_path: str) -> tuple[str, dict[str, str] | None] | None:
        """(routeKey, pathParameters) of the route that matches, None when none does."""
        for route in self.routes:
            if route.method == method:
                params = route.match(raw_path)
                if params is not None:
                    return route.key, params
        return None

    @staticmethod
    def target(handler: "Handler") -> tuple[str, str]:
        """(rawPath, rawQueryString) of the request."""
        target = handler.path
        if target.startswith(("http://", "https://")):  # absolute-form request target
            parsed = urllib.parse.urlsplit(target)
            target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        raw_path, _, raw_query = target.partition("?")
        return raw_path or "/", raw_query

    def build_event(
        self, handler: "Handler", body: bytes, route_key: str, path_params: dict[str, str] | None
    ) -> dict:
        method = handler.command.upper()
        raw_path, raw_query = self.target(handler)

        headers: dict[str, str] = {}
        cookies: list[str] = []
        tenant: str | None = None
        for name, value in handler.headers.items():
            lname = name.lower()
            if lname == HOOK_HEADER:
                continue
            if lname == TEST_TENANT_HEADER:
                tenant = value
                continue
            if lname == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
                continue
            headers[lname] = f"{headers[lname]},{value}" if lname in headers else value
        client_ip = handler.client_address[0]
        headers.setdefault("x-forwarded-for", client_ip)
        headers.setdefault("x-forwarded-port", str(handler.server.server_address[1]))
        headers.setdefault("x-forwarded-proto", "http")

        now = datetime.now(timezone.utc)
        request_id = uuid.uuid4().hex[:16] + "="
        context: dict = {
            "accountId": "123456789012",
            "apiId": "fuzzfront",
            "domainName": headers.get("host", "127.0.0.1").split(":")[0],
            "domainPrefix": headers.get("host", "127.0.0.1").split(".")[0].split(":")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": handler.request_version or "HTTP/1.1",
                "sourceIp": client_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if tenant is not None:
            context["authorizer"] = {
                "jwt": {
                    "claims": {
                        self.tenant_claim: tenant,
                        "sub": "fuzz",
                        "iss": "https://fuzz-front.invalid/",
                    },
                    "scopes": None,
                }
            }

        event: dict = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if raw_query:
            query: dict[str, str] = {}
            for name, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
                query[name] = f"{query[name]},{value}" if name in query else value
            if query:
                event["queryStringParameters"] = query
        if path_params:
            event["pathParameters"] = path_params
        if body:
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode("ascii")
                event["isBase64Encoded"] = True
        return event

    # -- invoke ---------------------------------------------------------------------------------

    def invoke(self, event: dict) -> dict:
        data = json.dumps(event).encode()
        # Connection refused: nothing was delivered, the local runtime is (re)starting
        # (`scripts/local-stack reload`), so wait for it rather than report a server error.
        deadline = time.monotonic() + self.unreachable_wait
        while True:
            try:
                return self._invoke_once(data)
            except InvokeFailure as failure:
                if failure.kind != "invoke_refused" or time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def _invoke_once(self, data: bytes) -> dict:
        request = urllib.request.Request(
            self.invoke_url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.invoke_timeout) as answer:
                status = answer.status
                function_error = answer.headers.get("X-Amz-Function-Error")
                payload = answer.read()
        except urllib.error.HTTPError as e:
            payload = e.read()
            raise InvokeFailure(
                502,
                "invoke_api_error",
                f"the Invoke API answered HTTP {e.code}",
                invoke_status=e.code,
                invoke_body=payload.decode("utf-8", "replace")[:4000],
            ) from None
        except TimeoutError:
            raise InvokeFailure(
                504, "invoke_timeout", f"no answer within {self.invoke_timeout} s"
            ) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError):
                raise InvokeFailure(
                    504, "invoke_timeout", f"no answer within {self.invoke_timeout} s"
                ) from None
            refused = isinstance(reason, ConnectionRefusedError)
            raise InvokeFailure(
                502,
                "invoke_refused" if refused else "invoke_unreachable",
                f"{self.invoke_url}: {reason} (did the local functions restart?)",
            ) from None
        text = payload.decode("utf-8", "replace")
        if status != 200:
            raise InvokeFailure(
                502,
                "invoke_api_error",
                f"the Invoke API answered HTTP {status}",
                invoke_status=status,
                invoke_body=text[:4000],
            )
        if function_error:
            raise InvokeFailure(
                502,
                "function_error",
                f"the function failed ({function_error})",
                function_error=function_error,
                result=_json_or_text(text),
            )
        try:
            result = json.loads(payload)
        except ValueError as e:
            raise InvokeFailure(
                502, "unparseable_result", f"the result is not JSON: {e}", result=text[:4000]
            ) from None
        # cargo lambda reports some failures as a 200 whose payload is a Lambda error object.
        if (
            isinstance(result, dict)
            and "statusCode" not in result
            and {"errorType", "errorMessage"} & result.keys()
        ):
            raise InvokeFailure(
                502, "function_error", "the function returned a Lambda error", result=result
            )
        return result

    # -- response -----------------------------------------------------------------------------

    @staticmethod
    def to_http(result) -> tuple[int, list[tuple[str, str]], bytes]:
        """API Gateway v2 result -> (status, headers, body); InvokeFailure when malformed."""
        if not isinstance(result, dict) or "statusCode" not in result:
            # Payload 2.0 inference: valid JSON without statusCode is a 200 of that JSON.
            body = json.dumps(result).encode() if not isinstance(result, str) else result.encode()
            return 200, [("Content-Type", "application/json")], body
        status = result.get("statusCode")
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise InvokeFailure(
                502, "malformed_response", f"statusCode is not an HTTP status: {status!r}",
                result=result,
            )
        headers: list[tuple[str, str]] = []
        names: set[str] = set()
        single = result.get("headers") or {}
        multi = result.get("multiValueHeaders") or {}
        if not isinstance(single, dict) or not isinstance(multi, dict):
            raise InvokeFailure(
                502, "malformed_response", "headers/multiValueHeaders must be objects",
                result=result,
            )
        for name, value in single.items():
            if value is None:
                continue
            headers.append((str(name), _header_value(value)))
            names.add(str(name).lower())
        for name, values in multi.items():
            if str(name).lower() in names or values is None:
                continue
            for value in values if isinstance(values, list) else [values]:
                headers.append((str(name), _header_value(value)))
        cookies = result.get("cookies") or []
        if not isinstance(cookies, list):
            raise InvokeFailure(502, "malformed_response", "cookies must be a list", result=result)
        headers.extend(("Set-Cookie", str(cookie)) for cookie in cookies)
        headers = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]

        body = result.get("body")
        if body is None:
            data = b""
        elif not isinstance(body, str):
            raise InvokeFailure(
                502, "malformed_response", f"body is not a string: {type(body).__name__}",
                result=result,
            )
        elif result.get("isBase64Encoded"):
            try:
                data = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError) as e:
                raise InvokeFailure(
                    502, "malformed_response", f"isBase64Encoded but body is not base64: {e}",
                    result=result,
                ) from None
        else:
            data = body.encode("utf-8")
        return status, headers, data

    def log(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True)
        with self.log_lock:
            if self.log_file:
                self.log_file.write(line + "\n")
            if not self.quiet:
                print(line, file=sys.stderr, flush=True)


def _bearer_token(value: str | None) -> str:
    scheme, _, token = (value or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _invalid_header(items) -> str | None:
    for name, value in items:
        if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value):
            return name
    return None


def _header_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # A header value must not break the response apart.
    return text.replace("\r", " ").replace("\n", " ")


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text[:4000]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has a Content-Length
    server_version = "fuzz-front"
    sys_version = ""
    front: Front  # set on the class in main()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - our own structured log instead
        pass

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():
                        pass  # trailers
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise ValueError("too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY_BYTES:
            raise ValueError("too large")
        return self.rfile.read(length) if length else b""

    def handle_any(self) -> None:
        front = self.front
        started = time.monotonic()
        record: dict = {"method": self.command, "target": self.path}
        try:
            body = self.read_body()
        except ValueError as e:
            self.close_connection = True
            too_large = str(e) == "too large"
            status = 413 if too_large else 400
            message = "Request Entity Too Large" if too_large else "Bad Request"
            self.answer(status, [("Content-Type", "application/json")],
                        json.dumps({"message": message}).encode())
            record.update(status=status, front=message)
            front.log(record)
            return
        bad = _invalid_header(self.headers.items())
        if bad:
            # API Gateway refuses such a request itself (a control character in a header value
            # is not HTTP); the function would fail to parse the event.
            self.answer(400, [("Content-Type", "application/json")],
                        json.dumps({"message": "Bad Request"}).encode())
            record.update(status=400, front=f"header {bad!r} has a control character")
            front.log(record)
            return
        route = front.route_for(self.command.upper(), front.target(self)[0])
        if route is None:
            # No route matches method and path: API Gateway answers itself (no $default route).
            self.answer(404, [("Content-Type", "application/json")],
                        json.dumps({"message": "Not Found"}).encode())
            record.update(status=404, front="no route matches")
            front.log(record)
            return
        if front.gateway_auth and not _bearer_token(self.headers.get("Authorization")):
            # The JWT authorizer (identity source $request.header.Authorization) refuses it.
            self.answer(401, [("Content-Type", "application/json")],
                        json.dumps({"message": "Unauthorized"}).encode())
            record.update(status=401, front="no bearer token (--gateway-auth)")
            front.log(record)
            return
        event = front.build_event(self, body, *route)
        record.update(route=event["routeKey"], tenant="authorizer" in event["requestContext"])
        if self.headers.get(HOOK_HEADER):
            record["hook"] = self.headers.get(HOOK_HEADER)
        try:
            result = front.invoke(event)
            status, headers, data = front.to_http(result)
        except InvokeFailure as failure:
            status = failure.status
            headers = [("Content-Type", "application/json")]
            description = {"kind": failure.kind, "detail": failure.detail, **failure.extra}
            data = json.dumps(
                {
                    "message": "Internal Server Error"
                    if status == 502
                    else "Gateway Timeout",
                    "front_error": description,
                    "request_event": event,
                },
                indent=1,
            ).encode()
            record["front_error"] = description
        record.update(status=status, ms=round((time.monotonic() - started) * 1000, 1))
        try:
            self.answer(status, headers, data)
        except OSError as e:  # the client gave up (its timeout) before the answer
            record["client_gone"] = type(e).__name__
            self.close_connection = True
        front.log(record)

    def answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304) and data:
            self.wfile.write(data)


# Every method is handled, also ones http.server does not know (e.g. QUERY): no route declares
# them, so the front answers 404 as API Gateway does.
def _any_method(self, name):
    if name.startswith("do_"):
        return self.handle_any
    raise AttributeError(name)


Handler.__getattr__ = _any_method


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", default=str(REPO_ROOT / ".local-stack/env"),
                        help="written by scripts/local-stack up (LAMBDA_ENDPOINT_URL, TENANT_CLAIM)")
    parser.add_argument("--lambda-endpoint", help="overrides LAMBDA_ENDPOINT_URL of --env-file")
    parser.add_argument("--function", default="connector-api")
    parser.add_argument("--openapi", default=str(REPO_ROOT / "docs/openapi.json"),
                        help="route templates come from its paths")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--invoke-timeout", type=float, default=35.0,
                        help="seconds to wait for the function (API Gateway waits 30)")
    parser.add_argument("--unreachable-wait", type=float, default=120.0,
                        help="seconds to keep retrying while the Invoke API refuses connections")
    parser.add_argument("--gateway-auth", action="store_true",
                        help="answer 401 {\"message\": \"Unauthorized\"} itself, as the JWT authorizer "
                        "does, when there is no `Authorization: Bearer <token>` (any token)")
    parser.add_argument("--quiet", action="store_true", help="no per-request lines on stderr")
    args = parser.parse_args(argv)

    Handler.front = Front(args)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        Path(args.port_file).write_text(f"{port}\n")
    print(f"listening on http://{args.host}:{port} -> {Handler.front.invoke_url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
