"""The Dask executor on a LocalCluster bound to 127.0.0.1: every listener on loopback, rows and summaries equal to
the local run (default and brats23 presets), a worker killed mid-run still yields every row, and the CLI's
--executor dask. One cluster for the module (2 worker processes x 1 thread)."""
from __future__ import annotations

import json
import os
import signal
from urllib.parse import urlparse

import pytest
from _cohort_cases import same, write_cohort

from medloss.scoring import DaskExecutor, score_folders, scoring_config

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0")
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("dask_cohort"), 40, size=24)


def _listeners(pid: int) -> list[str]:
    import psutil

    return [conn.laddr.ip for conn in psutil.Process(pid).net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN]


def test_every_listener_of_the_cluster_is_on_loopback(client):
    info = client.scheduler_info()
    assert urlparse(info["address"]).hostname == "127.0.0.1"
    assert urlparse(client.dashboard_link).hostname == "127.0.0.1"
    for addr, worker in info["workers"].items():
        assert urlparse(addr).hostname == "127.0.0.1" and urlparse(worker["nanny"]).hostname == "127.0.0.1"
    pids = [os.getpid(), *client.run(os.getpid).values()]  # scheduler and nannies live in this process
    ips = [ip for pid in pids for ip in _listeners(pid)]
    assert ips and set(ips) == {"127.0.0.1"}, ips


@pytest.mark.parametrize("preset", [None, "brats23"])
def test_dask_rows_and_summary_equal_the_local_run(client, cohort, preset):
    pred, ref = cohort
    cfg = scoring_config(preset, allow_uncovered_labels=True)
    local = score_folders(str(pred), str(ref), cfg)
    progress = []
    remote = score_folders(str(pred), str(ref), cfg, executor=client, progress=progress.append)
    assert not remote.errors and remote.summary["n_cases"] == 40
    assert same(remote.rows, local.rows) and same(remote.summary, local.summary)
    assert progress[-1].done == 40 and progress[-1].rate > 0 and progress[-1].eta_s == 0.0


def test_one_failing_case_is_one_error_row_on_dask(client, cohort, tmp_path):
    pred, ref = cohort
    pairs = [(f"c00{i}", str(pred / f"c00{i}.nii.gz"), str(ref / f"c00{i}.nii.gz")) for i in range(4)]
    pairs[2] = ("c002", str(tmp_path / "gone.nii.gz"), pairs[2][2])
    from medloss.scoring import score_pairs

    res = score_pairs(pairs, scoring_config(), executor=DaskExecutor(client))
    assert [e["case"] for e in res.errors] == ["c002"] and res.summary["n_cases"] == 3


@pytest.mark.slow
def test_the_cli_runs_on_its_own_loopback_cluster(cohort, tmp_path):
    from click.testing import CliRunner

    from medloss.cli.score import score

    pred, ref = cohort
    res = CliRunner().invoke(score, [str(pred), str(ref), "-q", "--executor", "dask", "--workers", "2", "--json",
                                     str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    res_local = CliRunner().invoke(score, [str(pred), str(ref), "-q", "--json", str(tmp_path / "l.json")])
    assert res_local.exit_code == 0, res_local.output
    got, want = (json.loads((tmp_path / f"{n}.json").read_text(encoding="utf-8")) for n in ("d", "l"))
    assert same(got["rows"], want["rows"]) and same(got["summary"], want["summary"])
    assert any(line.startswith("scoring") and "cases/s" in line for line in res.stderr.splitlines()), res.stderr


@pytest.mark.slow
def test_a_worker_killed_mid_run_still_yields_every_row(client, tmp_path):
    pred, ref = write_cohort(tmp_path, 16, size=40)
    cfg = scoring_config("brats23", allow_uncovered_labels=True)
    killed = []

    def kill_a_busy_worker(p):
        if p.done == 1:
            processing = client.processing()
            busy = max(processing, key=lambda w: len(processing[w]))
            killed.append((busy, list(processing[busy])))
            os.kill(client.run(os.getpid, workers=[busy])[busy], signal.SIGKILL)

    res = score_folders(str(pred), str(ref), cfg, executor=client, progress=kill_a_busy_worker)
    assert killed and killed[0][1], "no task was running on the killed worker"
    assert not res.errors and res.summary["n_cases"] == 16
    assert same(res.rows, score_folders(str(pred), str(ref), cfg).rows)
    client.wait_for_workers(2, timeout=60)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="reads a process's initial environment")
def test_its_own_cluster_keeps_glibcs_adaptive_malloc_thresholds(client):
    # Dask's MALLOC_TRIM_THRESHOLD_=65536 made every array of a case an mmap (11x the page faults); the module's
    # cluster, started first, has also written it into this process's environment, which workers inherit
    before = dict(os.environ)
    with DaskExecutor(workers=1) as ex:
        own = ex.client
        seen = own.run(lambda: b"MALLOC_TRIM_THRESHOLD_=" in __import__("pathlib").Path("/proc/self/environ")
                       .read_bytes())  # the environment the worker started with, which glibc read
        assert list(seen.values()) == [False]
        assert urlparse(own.scheduler.address).hostname == "127.0.0.1"
    assert ex.client is None and own.status == "closed"
    assert dict(os.environ) == before


def test_the_cli_scores_on_a_running_cluster_by_its_address(client, cohort, tmp_path):
    from click.testing import CliRunner

    from medloss.cli.score import score

    pred, ref = cohort
    res = CliRunner().invoke(score, [str(pred), str(ref), "-q", "--scheduler", client.scheduler.address, "--json",
                                     str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    got = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    want = score_folders(str(pred), str(ref), scoring_config())
    assert same(got["rows"], json.loads(json.dumps(want.rows))) and got["summary"]["n_cases"] == 40
    assert client.status == "running" and len(client.scheduler_info()["workers"]) == 2  # the cluster is not ours
