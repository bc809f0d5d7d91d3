"""A webhook receiver as a separate process: `python -m tests.cloud.attention.receiver PORT FILE SECRET`.

It verifies each POST's signature (the way a receiver is told to in the operator guide), answers
204, and appends one JSON line per request to FILE: the headers, the body, and whether the
signature verified. It prints "ready" once listening."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloud.attention.channels import SIGNATURE_HEADER, verify


def main(argv: list[str]) -> int:
    port, path, secret = int(argv[0]), argv[1], argv[2]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            ok = verify(secret, self.headers.get(SIGNATURE_HEADER, ""), body)
            with open(path, "a", encoding="utf-8") as f:
                f.write(
                    json.dumps(
                        {
                            "path": self.path,
                            "headers": dict(self.headers.items()),
                            "body": body.decode("utf-8", "replace"),
                            "verified": ok,
                        }
                    )
                    + "\n"
                )
            self.send_response(204 if ok or self.path.startswith("/gateway") else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
