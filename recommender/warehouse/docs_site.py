"""The data dictionary: dbt's docs site with its pictures, built and served over HTTP.

The site must be served: opened from disk (file://), browsers refuse its fetch of
``manifest.json``, and the page stays empty.
"""

from __future__ import annotations

import functools
import json
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from recommender.errors import BadInputError
from recommender.warehouse import diagrams
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import PROJECT_ROOT, Target

ASSETS = PROJECT_ROOT / "docs" / "assets"  # dbt_project.yml's asset-paths: generated, not committed
TARGET = PROJECT_ROOT / "target"


class DocsError(BadInputError, RuntimeError):
    """dbt could not parse the project or generate the site; its output above says why."""


def generate(target: Target, target_path: Path = TARGET) -> Path:
    """Parse the project, draw the pictures from the manifest and the database, then have dbt
    generate the site (which copies the pictures beside it). Returns the site's index.html."""
    for step in (["parse"], ["docs", "generate"]):
        if run_dbt(step, target, target_path=target_path).returncode != 0:
            raise DocsError(f"dbt {' '.join(step)} failed: see its output above")
        if step == ["parse"]:
            diagrams.write(json.loads((target_path / "manifest.json").read_text()), target, ASSETS)
    return target_path / "index.html"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """One line per request would bury the URL the command printed."""


def server(site: Path, port: int) -> ThreadingHTTPServer:
    """An HTTP server of the built site on 127.0.0.1:``port`` (0: any free port); the caller
    runs ``serve_forever`` and closes it."""
    return ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_QuietHandler, directory=str(site)))
