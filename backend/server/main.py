"""Start the service: data dir, token, job store, compute process, then uvicorn on a bound socket.

The socket is bound here (``port 0`` picks a free one) so ``server.json`` names the real port
before the first request. Ctrl-C / SIGTERM: uvicorn stops taking requests, the running job
finishes its frame or step and is recorded as interrupted (resumed at the next start), the
compute process exits, ``server.json`` is removed, and the command returns 0.
"""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

from backend.errors import InvalidInput

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                           fix="choose another --port, or --port 0 for any free one") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def serve(*, host: str = "127.0.0.1", port: int = 8765, data_dir: Path | None = None, token_file: Path | None = None,
          device: str = "auto", styles_dir: Path | None = None, allow_remote: bool = False) -> int:
    from backend.paths import default_styles_dir
    from backend.server import runtime

    if host not in LOOPBACK and not allow_remote:
        raise InvalidInput(f"--host {host} would expose the service to the network",
                           fix="keep the default 127.0.0.1, or add --allow-remote if you really mean it")
    _check_device(device)
    data_dir = runtime.prepare_data_dir(data_dir or runtime.default_data_dir())
    instance = runtime.Instance(data_dir).acquire()  # a second server on this data dir stops here
    try:
        token_path = Path(token_file).expanduser().resolve() if token_file else data_dir / runtime.TOKEN_FILE
        token = runtime.read_or_create_token(token_path)
        sock = bind(host, port)
        return _run(sock, host=host, data_dir=data_dir, token=token, token_path=token_path, device=device,
                    styles_dir=Path(styles_dir or default_styles_dir()).resolve(), allow_remote=allow_remote,
                    instance=instance)
    finally:
        instance.release()


def _check_device(device: str) -> None:
    text = str(device).lower()
    if text in ("auto", "cpu"):
        return
    if text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise InvalidInput(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")
    import torch

    from backend.errors import DeviceUnavailable

    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"--device {device} was requested but no usable CUDA GPU is visible",
                                fix="use --device cpu or auto")


def _run(sock, *, host, data_dir, token, token_path, device, styles_dir, allow_remote, instance) -> int:
    import uvicorn

    from backend.server import runtime
    from backend.server.app import Service, create_app
    from backend.server.security import Guard
    from backend.server.store import JobStore
    from backend.server.worker import ComputeProcess, Worker

    log = runtime.job_log(data_dir)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    store = JobStore(data_dir / runtime.DB_FILE)
    for job_id in store.requeue_unfinished():
        log.info("job %d queued again: it was running when the server stopped", job_id)
    compute = ComputeProcess(device, styles_dir, data_dir / "logs" / "compute.log")
    service = Service(store=store, worker=Worker(store, compute), styles_dir=styles_dir, requested_device=device)
    app = Guard(create_app(service), token=token, port=port, extra_hosts=(host,) if allow_remote else ())
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if allow_remote and host not in LOOPBACK:
        print(f"warning: listening on {host}: anyone who can reach this address and has the token can run jobs",
              file=sys.stderr)
    instance.publish(url=url, port=port, token_file=token_path)
    log.info("server started on %s (pid %d, data dir %s)", url, __import__("os").getpid(), data_dir)
    print(f"audio-cppn service on {url} (data dir {data_dir}, token in {token_path}); Ctrl-C stops it",
          file=sys.stderr, flush=True)
    # uvicorn re-raises the signal that stopped it once it is done; a quiet handler makes that a clean exit.
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
        store.close()
        log.info("server stopped")
    return 0
