"""Our log lines in lmms-eval's log.

lmms-eval logs through loguru and leaves Python's logging unconfigured, so the INFO lines of our code (which
settings a model prunes with, how many image tokens it kept) would not show in its runs. In an lmms-eval
process the records of the `llava` loggers are passed on to loguru, at their level, under their own names.
"""

from __future__ import annotations

import logging
import os
import sys


class _ToLoguru(logging.Handler):
    """Passes a record on to loguru as if loguru had logged it where the record was made."""

    def emit(self, record: logging.LogRecord) -> None:
        from loguru import logger

        try:
            level = logger.level(record.levelname).name
        except ValueError:  # a level loguru does not know by that name
            level = record.levelno
        where = {"name": record.name, "function": record.funcName, "line": record.lineno}
        # No arguments after the message: loguru then leaves braces in it alone.
        logger.patch(lambda loguru_record: loguru_record.update(where)).opt(exception=record.exc_info).log(
            level, record.getMessage())


def send_logs_to_lmms_eval() -> None:
    """Our INFO lines and above go to lmms-eval's log (once, however often this is called)."""
    ours = logging.getLogger("llava")
    if not any(isinstance(handler, _ToLoguru) for handler in ours.handlers):
        ours.addHandler(_ToLoguru())
    if ours.level == logging.NOTSET:  # a level the user set stays
        ours.setLevel(logging.INFO)


def running_lmms_eval() -> bool:
    """Whether this process is an lmms-eval command (`python -m lmms_eval`, `lmms-eval`, under a launcher too)."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None and main_spec.name.split(".")[0] == "lmms_eval":
        return True
    return os.path.basename(sys.argv[0]) in ("lmms-eval", "lmms_eval") if sys.argv else False
