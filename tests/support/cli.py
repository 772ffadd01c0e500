"""The real ``taskhub`` command in a subprocess, over its own SQLite database in a folder,
as a script would drive it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskhub.db import engines
from taskhub.service import apikeys


class Cli:
    def __init__(self, directory: Path) -> None:
        self.url = f"sqlite:///{directory / 'taskhub.db'}"
        self.directory = directory
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")}
        self.env["TASKHUB_DATABASE_URL"] = self.url
        self.env["TASKHUB_DATA_DIR"] = str(directory / "data")

    def __call__(
        self, *args: str, stdin: str | None = None, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "taskhub.cli", *args],
            cwd=self.directory,
            env=self.env,
            input=stdin,
            text=True,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def authenticate(self, key: str) -> str | None:
        """The tenant ``key`` authenticates as in this command's database, if any."""
        engine = engines.create_engine(self.url)
        try:
            with engine.begin() as conn:
                return apikeys.authenticate(conn, key, datetime.now(UTC))
        finally:
            engine.dispose()
