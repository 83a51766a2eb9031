"""moto's server with one request handled at a time (started by scripts/local-stack).

moto applies a DynamoDB TransactWriteItems item by item and, when one condition fails, puts back
a copy of the whole table taken before it began. With concurrent requests that copy also erases
writes other requests made in between, and a half-applied transaction is visible meanwhile.
DynamoDB makes every request atomic; a lock around each request gives moto the same property,
so concurrent requests from several function instances still race at request granularity, as in
AWS. Connections stay threaded (the SDKs keep them open), only the handling is serialized.
"""

import argparse
import os
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args()
    # As moto_server does: moto builds some URLs (SQS queue URLs, say) from it.
    os.environ.setdefault("MOTO_PORT", str(args.port))

    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized(environ, start_response):
        with lock:
            # moto builds whole responses; reading them inside the lock keeps it that way.
            return list(app(environ, start_response))

    run_simple(
        args.host,
        args.port,
        serialized,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
