"""The README's quick tour, run as written: its shell blocks are read from the README and
run by bash against `taskhub dev`, with three substitutions only, each what a reader does
by hand: the API's port (a free one, not 8000), the scratch database and data folder,
and each ``<id>`` (the id of the task the tour just made, looked up as a reader would).
A step of the tour that no longer works fails here."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: How a reader finds the id the tour asks for: the API's list filtered by name.
API_ID = (
    '$(curl -s -H "Authorization: Bearer $KEY" "$API/v1/tasks?name=hello"'
    ' | python3 -c \'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])\')'
)
#: The same through the CLI: the task `examples/task.json` made.
CLI_ID = (
    "$(.venv/bin/taskhub task list --json | python3 -c"
    ' \'import json,sys; print([t["id"] for t in json.load(sys.stdin)["items"]'
    ' if t["name"] != "hello"][0])\')'
)


def json_documents(text: str) -> list[object]:
    """The JSON documents curl printed one after another (with no newline between)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := len(text) - len(text[at:].lstrip())) < len(text):
        document, at = decoder.raw_decode(text, at)
        found.append(document)
    return found


def tour_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("### Quick tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", tour, flags=re.S)


def test_the_readme_has_a_quick_tour_of_the_api_and_the_cli() -> None:
    blocks = tour_blocks()
    assert len(blocks) == 2, blocks
    assert "curl" in blocks[0] and "taskhub task add" in blocks[1]


def test_the_quick_tour_runs_as_written(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "taskhub").exists():
        pytest.fail("the tour runs .venv/bin/taskhub: install with scripts/dev or scripts/test")
    api_block, cli_block = tour_blocks()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHUB_")}
    env["TASKHUB_DATABASE_URL"] = f"sqlite:///{tmp_path / 'taskhub.db'}"
    env["TASKHUB_DATA_DIR"] = str(tmp_path / "data")
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    dev = subprocess.Popen(
        [sys.executable, "-m", "taskhub.cli", "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def api_up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(api_up, timeout_s=90), "taskhub dev's API did not come up"
        script = "\n".join(
            [
                "set -euo pipefail",
                api_block.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("<id>", API_ID),
                'echo "=== CLI"',
                cli_block.replace("<id>", CLI_ID),
            ]
        )
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            text=True,
            capture_output=True,
            timeout=180,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        api_out, cli_out = done.stdout.split("=== CLI", 1)
        created, listed, executions, preview = json_documents(api_out)
        assert isinstance(created, dict) and created["name"] == "hello", api_out
        assert created["next_execution_time"], api_out
        assert isinstance(listed, dict) and [t["name"] for t in listed["items"]] == ["hello"]
        assert isinstance(executions, dict) and "items" in executions, api_out
        assert isinstance(preview, dict) and len(preview["fire_times"]) == 5, api_out
        example = json.loads((ROOT / "examples" / "task.json").read_text())
        assert example["name"] in cli_out and "hello" in cli_out, cli_out  # one tenant
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=60)
        finally:
            if dev.poll() is None:
                dev.kill()
            log.close()
