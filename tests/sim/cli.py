"""`segments run` as production runs it: the CLI in its own process (PYTHONPATH
inherited), killed with SIGKILL at a named failpoint or after a random delay."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAUSE_AT_ENV = "SEGMENTS_PUBLISH_PAUSE_AT"  # pipelines/core/files.py
PAUSE_DIR_ENV = "SEGMENTS_PUBLISH_PAUSE_DIR"

# Every failpoint of the publish path, in the order a run reaches them.
BEFORE_SWAP = ["stage:files", "stage:done", "publish:catalog_built"]
AFTER_SWAP = ["publish:swapped", "publish:audience_file", "publish:cleanup"]
FAILPOINTS = BEFORE_SWAP + AFTER_SWAP


def segments_bin() -> str:
    local = Path(sys.executable).with_name("segments")
    return str(local) if local.exists() else str(ROOT / ".venv" / "bin" / "segments")


@dataclass
class Outcome:
    argv: list[str]
    returncode: int | None  # None: killed
    stdout: str
    stderr: str
    killed_at: str | None = None  # failpoint name, or "random@<seconds>"
    reached: bool = True  # for a failpoint kill: the run got there

    def describe(self) -> str:
        tail = (self.stderr.strip().splitlines() or [""])[-1][:300]
        return f"exit {self.returncode} ({' '.join(self.argv[1:])}) stderr: {tail}"


class Runner:
    def __init__(self, defs: Path, data: Path, work: Path, engine: str | None = None, timeout: float = 600):
        self.defs, self.data, self.work, self.engine, self.timeout = defs, data, work, engine, timeout
        self.dagster_home = work / "dagster_home"
        self.dagster_home.mkdir(parents=True, exist_ok=True)

    def argv(self, as_of: str, *, full: bool = False, force: bool = False, extra: tuple[str, ...] = ()) -> list[str]:
        argv = [segments_bin(), "run", "--data", str(self.data), "--defs", str(self.defs), "--as-of", as_of]
        if full:
            argv.append("--full")
        if force:
            argv.append("--force")
        if self.engine:
            argv += ["--engine", self.engine]
        return argv + list(extra)

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in (PAUSE_AT_ENV, PAUSE_DIR_ENV)}
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
        env["DAGSTER_HOME"] = str(self.dagster_home)
        env["COLUMNS"] = "200"
        env.update(extra or {})
        return env

    def _start(self, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        # A session of its own, so a kill reaches the whole run (a Spark JVM too).
        return subprocess.Popen(argv, env=env, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    def run(self, as_of: str, **options) -> Outcome:
        argv = self.argv(as_of, **options)
        child = self._start(argv, self._env())
        try:
            out, err = child.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(child)
            out, err = child.communicate()
            return Outcome(argv, None, out, err + f"\n(timed out after {self.timeout}s)")
        return Outcome(argv, child.returncode, out, err)

    def _kill(self, child: subprocess.Popen) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)

    def kill_at(self, as_of: str, point: str, **options) -> Outcome:
        """Run until the failpoint `point`, then SIGKILL; `reached` False if the run ended first."""
        markers = self.work / "markers"
        marker = markers / f"{point.replace(':', '_')}.reached"
        marker.unlink(missing_ok=True)
        argv = self.argv(as_of, **options)
        child = self._start(argv, self._env({PAUSE_AT_ENV: point, PAUSE_DIR_ENV: str(markers)}))
        deadline = time.monotonic() + self.timeout
        while not marker.exists():
            if child.poll() is not None:
                out, err = child.communicate()
                return Outcome(argv, child.returncode, out, err, killed_at=point, reached=False)
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        self._kill(child)
        out, err = child.communicate()
        return Outcome(argv, None, out, err, killed_at=point)

    def kill_after(self, as_of: str, seconds: float, **options) -> Outcome:
        argv = self.argv(as_of, **options)
        child = self._start(argv, self._env())
        try:
            out, err = child.communicate(timeout=seconds)
            return Outcome(argv, child.returncode, out, err, killed_at=f"random@{seconds:.1f}s", reached=False)
        except subprocess.TimeoutExpired:
            self._kill(child)
            out, err = child.communicate()
            return Outcome(argv, None, out, err, killed_at=f"random@{seconds:.1f}s")
