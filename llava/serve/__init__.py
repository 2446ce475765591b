"""LLaVA's serving stack for the DART model: controller, model workers, Gradio web UI, CLI, demo (docs/Serving.md)."""

import logging

# LLaVA's default ports: controller 10000, model worker 40000 (its docs), Gradio 7860; loopback unless told.
DEFAULT_CONTROLLER_PORT = 10000
DEFAULT_WORKER_PORT = 40000
DEFAULT_WEB_PORT = 7860
DEFAULT_HOST = "127.0.0.1"

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """The servers' logging set-up (httpx would log one INFO line per heartbeat)."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)
