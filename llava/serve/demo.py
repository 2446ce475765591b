"""One command for a local demo: controller + one model worker + the web server, on loopback.

    python -m llava.serve.demo                       # the embedded tiny model, page at http://127.0.0.1:7860
    python -m llava.serve.demo --model-path liuhaotian/llava-v1.5-7b --device cuda
    python -m llava.serve.demo --model-path Qwen/Qwen2-VL-7B-Instruct --device cuda

Starts the three servers as child processes (the same commands a real deployment runs separately, see
docs/Serving.md), waits until each answers, logs the page's address, and stops all three on Ctrl-C or
SIGTERM, or when any of them exits. The controller and the worker share a worker secret generated for this
run, handed to them in their environment (LLAVA_WORKER_SECRET), not on their command lines.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from llava.constants import DEFAULT_MODEL_PATH
from llava.pruning_settings import BY_NAME
from llava.serve import (
    DEFAULT_CONTROLLER_PORT,
    DEFAULT_HOST,
    DEFAULT_WEB_PORT,
    DEFAULT_WORKER_PORT,
    configure_logging,
)
from llava.serve.worker_auth import SECRET_ENV, new_secret

logger = logging.getLogger("llava.serve.demo")


class DemoError(RuntimeError):
    pass


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface all three servers bind (default: loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_WEB_PORT, help="web page port")
    parser.add_argument("--controller-port", type=int, default=DEFAULT_CONTROLLER_PORT)
    parser.add_argument("--worker-port", type=int, default=DEFAULT_WORKER_PORT)
    parser.add_argument("--model-path", default=DEFAULT_MODEL_PATH, help="default: the embedded tiny model")
    parser.add_argument("--model-base", default=None)
    parser.add_argument("--device", default="cuda", help="cuda (falls back to the CPU when unavailable) or cpu")
    parser.add_argument("--limit-model-concurrency", type=int, default=5)
    parser.add_argument("--log-dir", default="logs", help="the web server's conversation logs")
    parser.add_argument("--no-sparse", action="store_true",
                        help="worker default without pruning (the page's DART switch still decides per request)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for each server")
    return parser.parse_args(argv)


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """The three servers' command lines (what docs/Serving.md runs by hand)."""
    controller = f"http://{_client_host(args.host)}:{args.controller_port}"
    worker = [
        sys.executable, "-m", "llava.serve.model_worker", "--host", args.host, "--port", str(args.worker_port),
        "--controller-address", controller, "--model-path", args.model_path, "--device", args.device,
        "--limit-model-concurrency", str(args.limit_model_concurrency),
    ]
    if args.model_base:
        worker += ["--model-base", args.model_base]
    if not args.no_sparse:
        # The DART release's settings (llava.pruning_settings), with the budget the checkpoint's family reads:
        # 128 selected on LLaVA, the 77.8% reduction ratio on Qwen (ratio only).
        worker += ["--sparse", "--pruned_layer", str(BY_NAME["pruned_layer"].default), *_budget_flags(args.model_path)]
    return {
        "controller": [sys.executable, "-m", "llava.serve.controller", "--host", args.host,
                       "--port", str(args.controller_port)],
        "model worker": worker,
        "web server": [sys.executable, "-m", "llava.serve.gradio_web_server", "--host", args.host,
                       "--port", str(args.port), "--controller-url", controller, "--model-list-mode", "reload",
                       "--log-dir", args.log_dir],
    }


def secret_environments() -> dict[str, dict[str, str]]:
    """What each server gets in its environment besides ours: one fresh worker secret for the controller and
    the worker (the environment, unlike a command line, is not readable by other users of the host)."""
    secret = new_secret()
    return {"controller": {SECRET_ENV: secret}, "model worker": {SECRET_ENV: secret}, "web server": {}}


def _budget_flags(model_path: str) -> list[str]:
    """The checkpoint family's default budget flags (an unreadable config is left to the worker, which says what
    is wrong with it; the LLaVA budget stands in meanwhile)."""
    from llava.model.builder import read_config
    from llava.model.families import family_for, families

    try:
        return family_for(read_config(model_path)).default_budget_flags()
    except (OSError, ValueError):
        return families()[0].default_budget_flags()


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _wait_for(name: str, process: subprocess.Popen, ready: Callable[[], bool], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"the {name} exited with code {process.returncode} while starting (see its log above)")
        try:
            if ready():
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    raise DemoError(f"the {name} did not come up within {timeout:g} s")


def _stop(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


SERVE_PACKAGES = ("fastapi", "uvicorn", "httpx", "gradio")


def missing_packages() -> list[str]:
    return [name for name in SERVE_PACKAGES if importlib.util.find_spec(name) is None]


def run(args: argparse.Namespace) -> int:
    import httpx  # after the check in main(): a clear hint beats an ImportError

    cmds = commands(args)
    environments = secret_environments()
    controller = f"http://{_client_host(args.host)}:{args.controller_port}"
    page = f"http://{_client_host(args.host)}:{args.port}"
    checks = {
        "controller": lambda: httpx.post(f"{controller}/list_models", timeout=2).status_code == 200,
        "model worker": lambda: bool(httpx.post(f"{controller}/list_models", timeout=2).json()["models"]),
        "web server": lambda: httpx.get(page, timeout=5).status_code == 200,
    }
    processes: dict[str, subprocess.Popen] = {}

    def on_signal(signum, frame):  # noqa: ARG001 (signal handler signature)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        for name, command in cmds.items():
            logger.info("starting the %s: %s", name, " ".join(command[1:]))
            processes[name] = subprocess.Popen(command, env={**os.environ, **environments[name]})
            _wait_for(name, processes[name], checks[name], args.startup_timeout)
        logger.info("demo ready: open %s (Ctrl-C stops the controller, the worker and the web server)", page)
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    raise DemoError(f"the {name} exited with code {process.returncode}")
            time.sleep(1)
    except KeyboardInterrupt:
        logger.info("stopping")
        return 0
    except DemoError as exc:
        logger.error("%s", exc)
        return 1
    finally:
        _stop(processes)


def main(argv=None) -> int:
    configure_logging()
    args = parse_args(argv)
    missing = missing_packages()
    if missing:
        logger.error("the demo needs %s: install the serve extra (bash scripts/setup_env.sh serve, or "
                     "pip install -e '.[serve]')", ", ".join(missing))
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
