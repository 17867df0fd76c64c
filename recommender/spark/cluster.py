"""A Spark standalone cluster on this machine, from the scripts in the pyspark wheel: a master and workers.

The wheel has no ``start-master.sh``; it has ``sbin/spark-daemon.sh``, which those scripts wrap, and the
jars of ``org.apache.spark.deploy.master.Master`` and ``...worker.Worker``. ``StandaloneCluster`` starts
them on 127.0.0.1 on free ports, with their pid and log files in a folder of its own, and stops them.
The same job runs on it as in local mode: only the master URL (``cluster.url``) changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from recommender.errors import UnavailableError
from recommender.spark.session import spark_home
from recommender.warehouse.embedded import free_port

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0


@dataclass
class StandaloneCluster:
    """A master and ``workers`` workers of ``cores`` cores and ``memory`` each; pid and log files under ``folder``."""

    folder: Path
    workers: int = 2
    cores: int = 1
    memory: str = "1g"
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"spark://{HOST}:{self.port}"

    def _daemon(self, action: str, cls: str, instance: int, *args: str) -> None:
        home = spark_home()
        env = os.environ | {
            "SPARK_HOME": str(home),
            "SPARK_PID_DIR": str(self.folder / "pids"),
            "SPARK_LOG_DIR": str(self.folder / "logs"),
            "SPARK_WORKER_DIR": str(self.folder / "work"),
            "SPARK_IDENT_STRING": f"netflix-{self.port}",  # pid files of this cluster, not another's
        }
        command = ["bash", str(home / "sbin" / "spark-daemon.sh"), action, cls, str(instance), *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise UnavailableError(f"spark-daemon.sh {action} {cls} failed: {done.stdout}{done.stderr}".strip())

    def start(self) -> StandaloneCluster:
        """Start the master, then the workers, and wait until every worker has registered."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._daemon(
            "start", MASTER_CLASS, 1, "--host", HOST, "--port", str(self.port), "--webui-port", str(self.ui_port)
        )
        for instance in range(1, self.workers + 1):
            worker = ["--host", HOST, "--cores", str(self.cores), "--memory", self.memory, "--webui-port", "0"]
            self._daemon("start", WORKER_CLASS, instance, *worker, self.url)
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.alive_workers() < self.workers:
            if time.monotonic() > deadline:
                self.stop()
                raise UnavailableError(f"{self.workers} Spark workers did not register in {START_TIMEOUT_S:.0f} s")
            time.sleep(0.5)
        return self

    def alive_workers(self) -> int:
        """Workers the master counts as alive (its JSON status page); 0 while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.ui_port}/json/", timeout=2) as answer:
                return int(json.load(answer).get("aliveworkers", 0))
        except OSError:
            return 0

    def stop(self) -> None:
        """Stop the workers and the master (each by its pid file); a part already stopped is left as it is."""
        for instance in range(1, self.workers + 1):
            self._daemon("stop", WORKER_CLASS, instance)
        self._daemon("stop", MASTER_CLASS, 1)
