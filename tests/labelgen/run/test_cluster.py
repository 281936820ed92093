"""The local Dask cluster of ``labelgen run``: no dashboard (no HTTP server at all) unless ``--dashboard`` asks."""
from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import psutil
import pytest
from click.testing import CliRunner

from labelgen.cli import main
from labelgen.run.cluster import start_local_cluster


def listening_ports() -> set[int]:
    """The TCP ports this process (the driver, where a local cluster's scheduler runs) listens on."""
    return {c.laddr.port for c in psutil.Process().net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def status_page(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as response:
        return response.status


def test_the_local_cluster_has_no_dashboard_unless_asked_and_then_serves_it():
    with start_local_cluster(workers=1, threads_per_worker=1) as cluster:
        port = cluster.scheduler.http_server.port
        assert port != 8787 and port not in listening_ports()  # what Dask opened, closed before any task
        with pytest.raises(urllib.error.URLError):
            status_page(port)
        assert cluster.scheduler_info["address"].startswith("tcp://127.0.0.1:")  # the cluster itself works
    with start_local_cluster(workers=1, threads_per_worker=1, dashboard="127.0.0.1:0") as cluster:
        port = cluster.scheduler.http_server.port
        assert port in listening_ports() and status_page(port) == 200  # bokeh's page, or Dask's notice without it
        assert cluster.dashboard_link == f"http://127.0.0.1:{port}/status"


@pytest.mark.parametrize("other", [["--serial"], ["--scheduler", "tcp://127.0.0.1:1"]])
def test_dashboard_is_the_local_clusters_option(tmp_path, other):
    result = CliRunner().invoke(main, ["run", "--source", "sample", "--out", str(tmp_path / "l.zarr"), "--dashboard",
                                       *other])
    assert result.exit_code == 2 and "--dashboard is the local cluster's" in result.output, result.output
    assert not (tmp_path / "l.zarr").exists()


@pytest.mark.slow
def test_labelgen_run_dashboard_prints_its_address_once(tmp_path):
    done = subprocess.run([sys.executable, "-m", "labelgen.cli", "run", "--source", "sample", "--teacher", "hull",
                           "--workers", "1", "--out", str(tmp_path / "l.zarr"), "--dashboard", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.strip() for line in done.stderr.replace("\r", "\n").splitlines() if "dashboard:" in line]
    assert len(lines) == 1 and lines[0].startswith("dashboard: http://127.0.0.1:") and "/status" in lines[0], lines
    assert ":0/" not in lines[0]  # the port it got, not the one asked for
