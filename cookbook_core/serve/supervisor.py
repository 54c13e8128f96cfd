"""The process that runs one vLLM server and keeps its state file true.

``python -m cookbook_core.serve.supervisor SERVER_DIR`` reads ``SERVER_DIR/spec.json``
(written by :func:`cookbook_core.serve.server.start`), starts vLLM's OpenAI server
with the serving environment's interpreter in a process group of its own (output to
``server.log``), and then watches it twice a second, writing ``state.json``
(atomically) on every change:

* ``starting`` until ``/health`` answers, then ``running``;
* ``dead`` when vLLM exits by itself (its exit code and the log's last lines are the
  reason), or when a running server stops answering ``/health`` for
  :data:`UNHEALTHY_S` seconds (vLLM is then stopped): a dead server is reported,
  never restarted;
* ``stopped`` after SIGTERM/SIGINT to the supervisor, or when the *owner* process
  named in the spec (the studio, a test) has exited: vLLM's group gets SIGTERM,
  then SIGKILL after a grace period, so its port is freed.

It does not decide settings (the spec carries them) and does not load adapters
(clients do that through the server's API).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

POLL_S = 0.5
STOP_GRACE_S = 20.0
HEALTH_EVERY_S = 5.0
UNHEALTHY_S = 30.0


def write_state(server_dir: Path, state: dict[str, Any]) -> None:
    """Replace ``state.json`` atomically (readers never see half a file)."""
    tmp = server_dir / f".state.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, server_dir / "state.json")


def log_tail(path: Path, n: int = 15) -> str:
    """The last ``n`` non-empty lines of a log file ('' when it is missing)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join([ln for ln in lines if ln.strip()][-n:])


def alive(pid: int | None) -> bool:
    """True when a process with this pid exists (and is not a zombie we own)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def healthy(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when the server's ``/health`` answers 200."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=timeout) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001 - any failure means "not healthy (yet)"
        return False


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    # vLLM's engine core runs in child processes of its own; make sure none survives.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(server_dir: Path) -> int:
    spec = json.loads((server_dir / "spec.json").read_text())
    stop_requested: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stop_requested.append(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    state: dict[str, Any] = {
        "name": spec["name"],
        "model": spec["model"],
        "model_dir": spec["model_dir"],
        "served_name": spec["served_name"],
        "host": spec["host"],
        "port": spec["port"],
        "dtype": spec["dtype"],
        "max_lora_rank": spec["max_lora_rank"],
        "max_model_len": spec["max_model_len"],
        "device": spec.get("device", "cpu"),
        "owner_pid": spec.get("owner_pid"),
        "supervisor_pid": os.getpid(),
        "server_pid": None,
        "state": "starting",
        "reason": "",
        "started_at": time.time(),
        "ready_seconds": None,
        "log": str(server_dir / "server.log"),
    }
    log = open(server_dir / "server.log", "ab")  # noqa: SIM115 - lives as long as vLLM
    env = {**os.environ, **spec.get("env", {})}
    proc = subprocess.Popen(
        spec["argv"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    state["server_pid"] = proc.pid
    write_state(server_dir, state)
    owner = spec.get("owner_pid")
    last_check = last_ok = time.time()
    try:
        while True:
            if stop_requested:
                state.update(state="stopped", reason=f"stopped ({stop_requested[0]})")
                break
            if owner and not alive(owner):
                state.update(state="stopped", reason=f"its owner process {owner} exited")
                break
            code = proc.poll()
            if code is not None:
                state.update(
                    state="dead",
                    reason=f"vLLM exited with code {code}; last log lines:\n"
                    + log_tail(server_dir / "server.log"),
                    exit_code=code,
                )
                write_state(server_dir, state)
                return 1
            now = time.time()
            if state["state"] == "starting" and healthy(spec["host"], spec["port"]):
                state.update(state="running", ready_seconds=round(now - state["started_at"], 1))
                write_state(server_dir, state)
                last_ok = now
            elif state["state"] == "running" and now - last_check >= HEALTH_EVERY_S:
                last_check = now
                if healthy(spec["host"], spec["port"], timeout=HEALTH_EVERY_S):
                    last_ok = now
                elif now - last_ok >= UNHEALTHY_S:
                    state.update(
                        state="dead",
                        reason=f"vLLM stopped answering /health for {UNHEALTHY_S:.0f} s and "
                        "was stopped; last log lines:\n" + log_tail(server_dir / "server.log"),
                    )
                    break
            time.sleep(POLL_S)
    finally:
        _stop_group(proc)
        log.close()
    state["stopped_at"] = time.time()
    write_state(server_dir, state)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
