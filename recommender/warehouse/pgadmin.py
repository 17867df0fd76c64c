"""A pgAdmin servers file (*Tools → Import/Export Servers*) for the warehouse the environment selects.

One server entry per group people log in through (``logins.GROUPS``), on the host, port and
database the rest of the project connects to (``targets.target_from_env``: the embedded server's
``NETFLIX_PGPORT``, or ``PGHOST``/``PGPORT``/``PGDATABASE``). No passwords: each person sets the
user name of their own login on the entry and types its password when pgAdmin asks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recommender.warehouse.logins import GROUPS
from recommender.warehouse.targets import PROJECT_ROOT, Target

SERVERS_FILE = PROJECT_ROOT / "target" / "pgadmin-servers.json"  # generated, git-ignored with the rest of target/
YOUR_LOGIN = "your_login"  # replaced by each person with the login `access add` made for them


def servers(target: Target) -> dict[str, Any]:
    """pgAdmin's import format: ``{"Servers": {"1": {...}, ...}}``, an entry per group, in ``GROUPS`` order."""
    return {
        "Servers": {
            str(number): {
                "Name": f"netflix_warehouse {target.database} ({group})",
                "Group": "netflix_warehouse",
                "Host": target.host,
                "Port": target.port,
                "MaintenanceDB": target.database,
                "Username": YOUR_LOGIN,
                "SSLMode": "prefer",
                "Comment": (
                    f"Set Username to your own login of group {group}: python -m recommender access add NAME"
                    f" --role {group} made it and printed its password once. Start with marts.catalogue."
                ),
            }
            for number, group in enumerate(GROUPS, start=1)
        }
    }


def write_servers(target: Target, path: Path = SERVERS_FILE) -> Path:
    """Write ``servers(target)`` as JSON to ``path`` (its folder created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(servers(target), indent=2) + "\n")
    return path
