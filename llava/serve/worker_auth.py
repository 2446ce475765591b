"""The shared secret with which model workers prove to the controller that they are workers.

Whoever registers as a worker receives users' prompts and images, so only holders of the secret may
register or send heartbeats. The controller and its workers read it from the environment variable
`LLAVA_WORKER_SECRET` or from a file (`--worker-secret-file`), never from the command line, which other
users of the host can read. Workers send it as `Authorization: Bearer SECRET`; the controller compares it
in constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from pathlib import Path

SECRET_ENV = "LLAVA_WORKER_SECRET"
MIN_SECRET_CHARS = 16
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class SecretError(ValueError):
    """A worker secret that cannot be used; the message is for the operator."""


def read_secret(secret_file: str | os.PathLike | None) -> str | None:
    """The secret from LLAVA_WORKER_SECRET, else from `secret_file`; None when neither gives one."""
    value = os.environ.get(SECRET_ENV, "").strip()
    if not value and secret_file is not None:
        try:
            value = Path(secret_file).read_text().strip()
        except OSError as exc:
            raise SecretError(f"cannot read the worker secret file {secret_file}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"the worker secret file {secret_file} is empty")
    if not value:
        return None
    check_secret(value)
    return value


def check_secret(secret: str) -> None:
    if len(secret) < MIN_SECRET_CHARS:
        raise SecretError(f"the worker secret is {len(secret)} characters; use at least {MIN_SECRET_CHARS} "
                          f"(e.g. {GENERATE_HINT})")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def write_private_secret(secret: str) -> Path:
    """`secret` in a new file that only this user can read (a fresh 0700 folder, the file 0600)."""
    folder = Path(tempfile.mkdtemp(prefix="llava-controller-"))
    path = folder / "worker-secret"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    return path


def remove_private_secret(path: Path) -> None:
    """Undo `write_private_secret`: a stopped controller's secret is of no use to anyone."""
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:  # someone put something else there: leave it
        pass


def authorization_header(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def presents_secret(authorization: str | None, secret: str) -> bool:
    """Whether an Authorization header value carries `secret` as its bearer token."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), secret.encode())
