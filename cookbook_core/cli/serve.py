"""``cookbook serve ...``: a vLLM server for the base model and its fine-tuned adapters.

``serve setup`` builds the serving environment (``.venv-serve``); ``serve start``
starts a server on 127.0.0.1 (loopback unless ``--host`` is passed) and waits until
it answers; ``serve status``/``list`` show servers with their state, port and
loaded adapters; ``serve load`` loads a training run's adapter by name; ``serve
logs`` prints the server's log; ``serve stop`` stops it and frees its port.  The
work is done by :mod:`cookbook_core.serve.server`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from cookbook_core.errors import BadInput


def start_progress(*, quiet: bool, tty: bool) -> Callable[[float], None]:
    """The start-up ticker on stderr: one line rewritten in place on a terminal, a line
    every 15 s in a log file, nothing when quiet."""
    shown = [-1]

    def tick(seconds: float) -> None:
        if quiet:
            return
        if tty:
            print(f"\rstarting vLLM ({seconds:.0f} s)", end="", file=sys.stderr, flush=True)
        elif int(seconds) // 15 > shown[0]:
            shown[0] = int(seconds) // 15
            print(f"starting vLLM ({seconds:.0f} s)", file=sys.stderr, flush=True)

    return tick


def cmd_setup(args: argparse.Namespace) -> int:
    from cookbook_core.serve import env

    return env.setup(Path(args.venv) if args.venv else None)


def _show(info) -> None:  # noqa: ANN001 - a ServerInfo
    from cookbook_core.serve import server

    line = f"{info.name}: {info.state}  {info.model}  {info.base_url}  dtype={info.dtype}"
    if info.ready_seconds is not None:
        line += f"  ready in {info.ready_seconds:.0f} s"
    print(line)
    if info.reason:
        print("  " + info.reason.replace("\n", "\n  "))
    if info.state == "running":
        try:
            names = server.loaded_models(info)
        except Exception as exc:  # noqa: BLE001 - status must still print
            print(f"  (models not listed: {exc})")
        else:
            print("  serving: " + ", ".join(names))


def cmd_start(args: argparse.Namespace) -> int:
    from cookbook_core.serve import server

    if args.host != "127.0.0.1":
        print(f"note: listening on {args.host}, not only on this machine", file=sys.stderr)

    tick = start_progress(quiet=args.quiet, tty=sys.stderr.isatty())

    info = server.start(
        args.model,
        name=args.name,
        host=args.host,
        port=args.port,
        dtype=args.dtype,
        max_model_len=args.max_model_len,
        timeout=args.timeout,
        progress=tick,
    )
    if not args.quiet:
        print(file=sys.stderr)
    _show(info)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from cookbook_core.serve import server

    info = server.stop(args.name)
    if info is None:
        raise BadInput(f"no server named {args.name!r}")
    _show(info)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from cookbook_core.serve import server

    infos = [server.read(args.name)] if args.name else server.list_servers()
    infos = [i for i in infos if i is not None]
    if not infos:
        print("no servers (start one: cookbook serve start)")
        return 0 if not args.name else 2
    for info in infos:
        _show(info)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from cookbook_core.eval.evaluation import resolve_adapter
    from cookbook_core.serve import server

    info = server.read(args.name)
    if info is None or info.state != "running":
        raise BadInput(f"server {args.name!r} is not running (cookbook serve start)")
    adapter = resolve_adapter(args.adapter, info.model)
    print(server.ensure_adapter(info, adapter))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from cookbook_core.serve import server
    from cookbook_core.serve.supervisor import log_tail

    info = server.read(args.name)
    if info is None:
        raise BadInput(f"no server named {args.name!r}")
    print(log_tail(Path(info.log), args.lines))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "serve",
        help="a vLLM server for the base model and fine-tuned adapters (fast evaluation)",
        description="Start, watch and stop a vLLM OpenAI-compatible server. Evaluation, "
        "SELF-GUIDE and alignment use it with --backend served (or auto, when it runs). "
        "First: cookbook serve setup (builds .venv-serve, about 5 minutes).",
    )
    ssub = sp.add_subparsers(dest="serve_command", required=True)
    p = ssub.add_parser("setup", help="build the serving environment (.venv-serve)")
    p.add_argument("--venv", help="where to build it (default: .venv-serve in the project)")
    p.set_defaults(func=cmd_setup)

    p = ssub.add_parser("start", help="start a server and wait until it answers")
    p.add_argument("--model", default="default", help="model name or folder (default: embedded)")
    p.add_argument("--name", default="default", help="server name (default: default)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback only)")
    p.add_argument("--port", type=int, default=8100, help="port (default 8100)")
    p.add_argument(
        "--dtype", help="weights dtype (default: float32 on CPU, identical to transformers)"
    )
    p.add_argument("--max-model-len", type=int, default=2048, help="context window (2048)")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for it (600)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_start)

    for verb, fn, text in (
        ("stop", cmd_stop, "stop a server and free its port"),
        ("status", cmd_status, "state, address and loaded adapters (all servers by default)"),
        ("logs", cmd_logs, "the server's log"),
    ):
        p = ssub.add_parser(verb, help=text)
        p.add_argument("--name", default=None if verb == "status" else "default")
        if verb == "logs":
            p.add_argument("-n", "--lines", type=int, default=40)
        p.set_defaults(func=fn)

    p = ssub.add_parser("load", help="load a training run's LoRA adapter; prints its served name")
    p.add_argument("adapter", help="training run id, run folder or adapter folder")
    p.add_argument("--name", default="default", help="server name")
    p.set_defaults(func=cmd_load)
