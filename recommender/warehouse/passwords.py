"""Passwords the project makes for itself: from an environment variable, else generated once into ``.secrets/``.

``.secrets/`` is git-ignored and only its owner may enter it (mode 0700, files 0600), so no
secret is ever in the repository, in dbt's logs, or readable by another local user.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

SECRETS_DIR = Path(__file__).resolve().parents[2] / ".secrets"  # the project's, beside .venv


def secret_file(name: str, secrets_dir: Path = SECRETS_DIR) -> Path:
    return secrets_dir / name


def _private_file(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def generated(
    name: str, variable: str, environ: Mapping[str, str] = os.environ, secrets_dir: Path = SECRETS_DIR
) -> str:
    """The secret ``name``: ``environ[variable]`` if set, else the file ``secrets_dir/name``, generated on first use."""
    if value := environ.get(variable):
        return value
    path = secret_file(name, secrets_dir)
    if not path.exists():
        # written aside, then linked in place: two first uses at once (make run beside make serve, or two
        # test workers) agree on one password, and neither reads a file that is still empty
        draft = path.with_name(f".{name}.{secrets.token_hex(8)}")
        _private_file(draft, secrets.token_urlsafe(24) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def hint(name: str, variable: str, environ: Mapping[str, str] = os.environ, secrets_dir: Path = SECRETS_DIR) -> str:
    """Where the secret is, for people: its variable, or its file."""
    return f"${variable}" if environ.get(variable) else str(secret_file(name, secrets_dir))


def write_pgpass(host: str, port: int, user: str, password: str, secrets_dir: Path = SECRETS_DIR) -> Path:
    """A libpq password file with one entry, ``secrets_dir/pgpass``: plain psql and dbt find the password there."""

    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    path = secret_file("pgpass", secrets_dir)
    _private_file(path, f"{escaped(host)}:{port}:*:{escaped(user)}:{escaped(password)}\n")
    return path
