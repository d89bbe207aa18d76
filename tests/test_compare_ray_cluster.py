"""docs/cluster.md's path as a user runs it, in separate processes: `ray start --head` on a
machine that holds a Ray token, then `python -m kexp compare --engine ray --address HEAD:PORT`,
once against a cluster with token authentication (Ray 2.60's default once a token exists) and
once against one with authentication off; kexp leaves the cluster running.

Each test is one "machine": a home folder of its own (where Ray keeps ~/.ray/auth_token) and a
temporary folder of its own (Ray's session files, kexp's worker folders), every Ray process on
127.0.0.1, in one process group that the test kills at the end (`ray stop` would stop every Ray
of this user on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kexp.experiments.compare import plan, ray_token, ray_worker

from helpers import run_kexp

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))  # the `ray` command of this Python
STUDY = ["--inits", "zeros", "--seeds", "0", "--epochs", "1", "--train-samples", "128"]
RAY_VARIABLES = (ray_token.MODE_VARIABLE, ray_token.TOKEN_VARIABLE, ray_token.TOKEN_PATH_VARIABLE,
                 "RAY_ADDRESS")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


@pytest.fixture
def machine(tmp_path):
    """The environment of a machine whose user has run a local Ray before: a token in
    ~/.ray/auth_token, made by the command that docs/cluster.md gives."""
    short = Path(tempfile.mkdtemp(prefix="kexp-test-"))  # Ray's socket paths: <= 107 characters
    home = tmp_path / "home"
    home.mkdir()
    environment = {key: value for key, value in os.environ.items() if key not in RAY_VARIABLES}
    environment.update(HOME=str(home), TMPDIR=str(short), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
                       RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([RAY, "get-auth-token", "--generate"], env=environment, check=True,
                   capture_output=True, timeout=60)
    assert (home / ".ray" / "auth_token").is_file()
    try:
        yield environment
    finally:
        shutil.rmtree(short, ignore_errors=True)


@contextlib.contextmanager
def head_node(environment: dict, **variables: str):
    """`ray start --head` (docs/cluster.md's command, on loopback, 1 CPU, a small object store) with
    `variables` added to its environment; yields its address and the started output, and kills
    its processes (one process group) afterwards."""
    port, client_port, agent_port = free_ports(3)
    starting = subprocess.Popen(
        [RAY, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
         "--ray-client-server-port", str(client_port), "--dashboard-agent-listen-port",
         str(agent_port), "--include-dashboard=false", "--num-cpus", "1",
         "--object-store-memory", str(100 * 2**20)],
        env={**environment, **variables}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        said, _ = starting.communicate(timeout=120)
        assert starting.returncode == 0 and "Ray runtime started" in said, said
        yield f"127.0.0.1:{port}", said
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(starting.pid, signal.SIGKILL)


def kexp_compare(environment: dict, address: str, runs_dir: Path) -> subprocess.CompletedProcess:
    return run_kexp("compare", "--engine", "ray", "--address", address, "--runs-dir", runs_dir,
                    *STUDY, env=environment)


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=5):
        return True
    return False


def assert_study_finished(result: subprocess.CompletedProcess, runs_dir: Path) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    (compare_dir,) = runs_dir.glob("compare-*")
    rows = json.loads((compare_dir / plan.SUMMARY_JSON).read_text())["rows"]
    assert [(row["initializer"], row["status"]) for row in rows] == [("zeros", "finished")]


def test_a_token_cluster_takes_the_token_of_the_drivers_machine(machine, tmp_path):
    """Token authentication on (the token exists, RAY_AUTH_MODE unset): the study runs without
    RAY_AUTH_MODE=token; a driver without the token, or with another, is told what fixes it."""
    with head_node(machine) as (address, said):
        assert "Token authentication is enabled" in said
        assert_study_finished(kexp_compare(machine, address, tmp_path / "runs"),
                              tmp_path / "runs")
        assert listening(address)  # kexp left the cluster it did not start running

        stranger = {**machine, "HOME": str(tmp_path / "stranger")}  # a machine without it
        refused = kexp_compare(stranger, address, tmp_path / "refused")
        assert refused.returncode == 2, refused.stderr
        message = refused.stderr.strip().splitlines()[-1]
        assert f"Invalid value for `address`: '{address}'" in message
        assert "requires a token and this machine holds none" in message
        assert f"{tmp_path / 'stranger'}/.ray/auth_token" in message
        assert "RAY_AUTH_TOKEN=<that token>" in message and "ray get-auth-token" in message

        wrong = kexp_compare({**stranger, ray_token.TOKEN_VARIABLE: "0" * 64}, address,
                             tmp_path / "refused")
        assert wrong.returncode == 2, wrong.stderr
        assert ("it refused this machine's token (from the RAY_AUTH_TOKEN variable)"
                in wrong.stderr)
        assert not (tmp_path / "refused").exists() and listening(address)


def test_a_cluster_without_authentication_takes_a_driver_set_to_token_mode(machine, tmp_path):
    """Authentication off (RAY_AUTH_MODE=disabled at `ray start`), the driver's machine holding
    a token and set to RAY_AUTH_MODE=token: Ray alone would connect, but the study's actors would
    never start."""
    with head_node(machine, RAY_AUTH_MODE="disabled") as (address, said):
        assert "Token authentication is enabled" not in said
        driver = {**machine, ray_token.MODE_VARIABLE: "token"}
        assert_study_finished(kexp_compare(driver, address, tmp_path / "runs"),
                              tmp_path / "runs")
        assert listening(address)
        assert not list((Path(machine["TMPDIR"]) / ray_worker.WORK_ROOT).iterdir())
