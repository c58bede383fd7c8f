"""``audio-cppn serve``: the local service that runs render and train jobs for Blender (and scripts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from backend.paths import STYLES_ENV

EPILOG = """\
examples:
  audio-cppn serve                               # http://127.0.0.1:8765, data in the user data folder
  audio-cppn serve --port 0 --data-dir /tmp/svc  # any free port; read it from /tmp/svc/server.json
  audio-cppn serve --device cuda:1               # jobs run on the second GPU

The data dir holds server.json (url, port, pid, version, token file), the token (mode 0600),
the job store (jobs.sqlite3) and logs/. Every endpoint but /health needs the header
'Authorization: Bearer TOKEN'. Jobs left running by a crash or Ctrl-C resume at the next start.
See the README's "Service" section for every endpoint and a curl session.
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the local service (HTTP API for the Blender add-on and scripts)",
        description="Run the service: one process that owns the GPU, runs render, train and features jobs "
                    "from a persistent queue in order, and answers over HTTP on 127.0.0.1.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; others need --allow-remote)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port, 0 for any free one (default 8765)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="job store, token, logs and server.json (default: the user data folder, "
                             "~/.local/share/audio-cppn on Linux)")
    parser.add_argument("--token-file", type=Path, default=None,
                        help="read the token from this file, or write a new one there (default DATA_DIR/token)")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present), cpu, cuda or cuda:N: where jobs run (default auto)")
    parser.add_argument("--styles-dir", type=Path, default=None,
                        help=f"style library folder (default: ${STYLES_ENV} or the project's styles/)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a --host other than loopback (the token is then all that protects the jobs)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.server.main import serve

    if not 0 <= args.port <= 65535:
        from backend.errors import InvalidInput

        raise InvalidInput(f"--port must be 0..65535, got {args.port}")
    return serve(host=args.host, port=args.port, data_dir=args.data_dir, token_file=args.token_file,
                 device=args.device, styles_dir=args.styles_dir, allow_remote=args.allow_remote)
