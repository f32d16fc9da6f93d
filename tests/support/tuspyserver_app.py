"""Test-only tus 1.0 server: tuspyserver (PyPI, a FastAPI router) under uvicorn, on loopback.

A third, independent tus implementation beside resumable-upload and @tus/server, deployed the
way its documentation shows: the router mounted on a FastAPI app, files and `<id>.info`
sidecars (JSON, with the decoded Upload-Metadata) in one directory. It advertises no checksum
and answers no Repr-Digest, and its HEAD refuses (400) an upload whose metadata lacks the
`filename` and `filetype` keys the reference tus clients send. Started by
tests/support/tus_servers.py; it refuses to listen on anything but loopback. Nothing here
imports the agent. Usage: python tuspyserver_app.py --port N --dir DIR [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import sys

import uvicorn
from fastapi import FastAPI
from tuspyserver import create_tus_router

LOOPBACKS = ("127.0.0.1", "::1", "localhost")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    if args.host not in LOOPBACKS:
        print(f"refusing to listen on {args.host}: loopback only", file=sys.stderr)
        return 2
    app = FastAPI()
    app.include_router(create_tus_router(prefix="files", files_dir=args.dir))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
