"""Start the real Dagster webserver on loopback and ask its GraphQL API what it shows."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # starts dagster-webserver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "SEGMENTS_DATA": str(home / "data")}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
         "-m", "pipelines.definitions"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"webserver exited: {process.stderr.read().decode()[-2000:]}")
            try:
                _graphql(port, "{ version }")
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("webserver did not answer within 90 s")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_ui_shows_assets_checks_schedules_and_sensor(webserver):
    data = _graphql(webserver, """
    {
      assetNodes { assetKey { path } groupName assetChecksOrError { ... on AssetChecks { checks { name } } } }
      repositoriesOrError {
        ... on RepositoryConnection {
          nodes { name schedules { name cronSchedule } sensors { name } jobs { name } }
        }
      }
    }
    """)["data"]
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == {
        "landing_files", "lake_subscribers", "lake_events", "segment_membership", "segment_history",
        "audience_recipients", "analyst_warehouse",
    }
    checks = {c["name"] for n in nodes.values() for c in n["assetChecksOrError"].get("checks", [])}
    assert {"suppression", "unique_members", "no_sudden_shrink", "quarantine_rate"} <= checks
    repo = data["repositoriesOrError"]["nodes"][0]
    assert {s["name"]: s["cronSchedule"] for s in repo["schedules"]} == {
        "nightly_full_refresh": "0 2 * * *", "hourly_refresh": "0 0,1,3-23 * * *",
    }
    assert sorted(s["name"] for s in repo["sensors"]) == ["alert_failed_refresh", "landing_sensor", "record_failed_refresh"]
    assert "refresh" in {j["name"] for j in repo["jobs"]}
