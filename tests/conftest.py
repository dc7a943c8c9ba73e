"""Shared fixtures: a tiny but complete project (definitions + landing files) on disk."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.core.settings import Paths

REPO = Path(__file__).resolve().parent.parent
# A copy of ../shared/spec/examples/segment_defs, so tests run wherever the repo is cloned.
SPEC_EXAMPLES = REPO / "tests" / "fixtures" / "spec_examples" / "segment_defs"

SUBSCRIBERS_CSV = """subscriber_id,email,status,first_name,city,state,signup_form,created_at,tags,age,loyalty_points,vip,birthday
s1,ann@example.com,active,Ann,New York,NY,Checkout,2026-11-20T10:00:00Z,webinar-attendee|VIP,34,120,true,1990-05-01
s2,bob@example.com,unsubscribed,Bob,Buffalo,ny,Homepage,2025-01-01T00:00:00Z,Webinar-Attendee,51,,false,
s3,cy@example.com,active,Cy,Boston,MA,NYC meetup form,2026-11-01 08:00:00,new-customer,,5,,
s4,dee@example.com,bounced,Dee,Albany,NY,Checkout,2026-11-25T00:00:00+02:00,,29,0,true,
s5,eve@example.com,active,Eve,Austin,TX,Blog footer,2024-06-01T00:00:00Z,webinar-2026| newsletter ,44,900,false,1980-12-31
"""

EVENTS_CSV = """event_id,subscriber_id,event,occurred_at,amount,product,campaign
e1,s1,purchase,2026-11-21T12:00:00Z,49.5,mug,
e2,s3,purchase,2026-11-10T12:00:00Z,12,shirt,
e3,s3,purchase,2026-09-01T12:00:00Z,80,hoodie,
e4,s5,email_open,2026-11-26T09:00:00Z,,,bf-2026
e5,s2,email_click,2026-10-01T09:00:00Z,,,oct
e6,s4,purchase,2026-11-28T09:00:00Z,10,mug,
"""

AS_OF = "2026-11-27T06:00:00Z"


def write_project(root: Path, *, subscribers: str = SUBSCRIBERS_CSV, events: str = EVENTS_CSV,
                  snapshot_name: str = "subscribers_20261127T050000Z.csv") -> Paths:
    defs = root / "segment_defs"
    shutil.copytree(SPEC_EXAMPLES, defs)
    data = root / "data"
    (data / "landing" / "subscribers").mkdir(parents=True)
    (data / "landing" / "events").mkdir(parents=True)
    (data / "landing" / "subscribers" / snapshot_name).write_text(subscribers)
    (data / "landing" / "events" / "events_20261127T050000Z.csv").write_text(events)
    return Paths(defs=defs, data=data)


@pytest.fixture
def project_paths(tmp_path) -> Paths:
    return write_project(tmp_path)


# A Spark Connect server (issue 23) needs about 20 s to come up on these machines; a
# busy one gets much longer before the test session gives up.
CONNECT_START_TIMEOUT = 240


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_group(process: subprocess.Popen) -> None:
    """End the server this fixture started: its own process group (the script and the
    JVM, which outlives the script by the few seconds Spark takes to shut down)."""
    group = process.pid  # start_new_session: the group is the script's pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(group):
            break
        os.killpg(group, sig)
        deadline = time.monotonic() + 30
        while _group_alive(group) and time.monotonic() < deadline:
            process.poll()  # reap the script, so only the JVM keeps the group alive
            time.sleep(0.2)
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def spark_connect_url(tmp_path_factory) -> Iterator[str]:
    """`sc://127.0.0.1:PORT` of a Spark Connect server (`local[1]`) that this test
    session starts on a free loopback port with pyspark's own
    `sbin/start-connect-server.sh`, and stops at the end. Skipped without pyspark or
    without the Connect client (`pip install 'pyspark[connect]>=4,<5'`)."""
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: `make setup-spark`")
    try:
        from pyspark.sql.connect.utils import check_dependencies

        check_dependencies()
    except ImportError as error:
        pytest.skip(f"the Spark Connect client is not installed (pip install 'pyspark[connect]>=4,<5'): {error}")
    home = Path(pyspark.__file__).parent
    work = tmp_path_factory.mktemp("spark_connect")
    port = _free_port()
    # Logs and pid files in this session's folder: never in the venv, never shared with
    # another test session's server.
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOG_DIR": str(work), "SPARK_PID_DIR": str(work)}
    command = [
        "bash", str(home / "sbin" / "start-connect-server.sh"), "--wait", "--master", "local[1]",
        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf", f"spark.connect.grpc.binding.port={port}",
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=1",
        # As for the in-process test session: the quick JIT tier and the serial GC halve the warm-up.
        "--driver-java-options", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    ]
    log = work / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + CONNECT_START_TIMEOUT
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").splitlines()[-20:]
                pytest.fail(f"the Spark Connect server did not start on 127.0.0.1:{port}:\n" + "\n".join(tail))
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        _stop_group(server)


# Fixtures that start a JVM or a webserver. A test taking one must be marked `slow`, so
# `pytest -m "not slow"` stays the quick loop (issue 21); a forgotten mark stops collection.
SLOW_FIXTURES = frozenset({"spark", "spark_connect_url", "webserver"})


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items
                if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())) and not item.get_closest_marker("slow")]
    if unmarked:
        raise pytest.UsageError("mark @pytest.mark.slow (they start a JVM or a webserver): " + ", ".join(unmarked))
