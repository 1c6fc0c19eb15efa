"""One job per model: the local executor (submitit, separate processes) and a real Slurm cluster
(scripts/slurm_local.sh: Debian's slurm-wlm + munge, one node) build the same site as the serial
build; a cancelled job is reported and the rerun computes only what is missing.

The Slurm tests skip, with the reason, only where the cluster cannot start (not root, no
packages); `make test` starts it.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from atlas import cli
from test_hostile_inputs import DATE, _pages, error_line, project

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def two_models(tmp: Path) -> Path:
    config = project(tmp, models=["Tiny A", "Tiny B"])
    text = config.read_text().replace("resolution = [64, 64]", "resolution = [96, 96]")
    text = text.replace("depth = 2, embed_dim = 32", "depth = 3, embed_dim = 32", 1)  # two architectures
    config.write_text(text + '\n[[comparisons]]\ntitle = "A vs B"\nkind = "models"\n', encoding="utf-8")
    return config


def build(config: Path, *args: str) -> int:
    root = config.parents[1]
    return cli.main(["--config", str(config), "--docs-dir", str(root / "docs"), "--no-site", "-q",
                     "--build-date", DATE, *args])


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The serial build of the two-model project: the reference every executor must equal."""
    tmp = tmp_path_factory.mktemp("serial")
    config = two_models(tmp)
    assert build(config) == 0
    return _pages(tmp / "docs")


def test_local_workers_build_the_serial_site(serial, tmp_path):
    config = two_models(tmp_path)
    assert build(config, "--executor", "local", "--workers", "2") == 0
    assert _pages(tmp_path / "docs") == serial
    logs = sorted(p.name for p in (tmp_path / "out" / "jobs").glob("*_log.err"))
    assert len(logs) == 2  # one job per model, each with its log
    assert build(config, "--executor", "local", "--workers", "2") == 0  # nothing changed: no job sent
    assert sorted(p.name for p in (tmp_path / "out" / "jobs").glob("*_log.err")) == logs
    assert _pages(tmp_path / "docs") == serial


def test_unknown_executor_is_one_line(tmp_path, capsys):
    config = two_models(tmp_path)
    assert build(config, "--executor", "slrum") == 2
    assert "closest: slurm" in error_line(capsys)


def test_slurm_without_sbatch_is_one_line(tmp_path, capsys, monkeypatch):
    config = two_models(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert build(config, "--executor", "slurm") == 2
    assert "sbatch is not on PATH" in error_line(capsys)
    assert not (tmp_path / "out" / "state" / "models").exists()


# ---------------------------------------------------------------- a real Slurm


def _slurm_up() -> str | None:
    """None when a Slurm node is idle (starting the local cluster if needed), else why not."""
    if shutil.which("sinfo") and _idle():
        return None
    script = REPO / "scripts" / "slurm_local.sh"
    done = subprocess.run([str(script), "up"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not _idle():
        return f"the local Slurm cluster did not start ({(done.stderr or done.stdout).strip()[-200:]})"
    return None


def _idle() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(s.strip() in ("idle", "mixed") for s in out.splitlines())


@pytest.fixture(scope="module")
def slurm():
    why = _slurm_up()
    if why:
        pytest.skip(why)


def _queued() -> dict[str, str]:
    """Job id -> state of every job in the queue."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)


def _cancel_first_job(stop: threading.Event, cancelled: list[str], earlier: frozenset = frozenset()) -> None:
    """Cancel the first job of the build under test as soon as it runs (killed mid-way, not while
    pending; ``earlier``: jobs queued before the build, e.g. an earlier test's, not its own)."""
    while not stop.is_set():
        jobs = {i: state for i, state in _queued().items() if i not in earlier}
        if jobs:
            first = min(jobs, key=int)
            if jobs[first] == "RUNNING":
                subprocess.run(["scancel", first], check=True)
                cancelled.append(first)
                return
        time.sleep(0.05)


def test_slurm_build_equals_serial_and_resumes_after_scancel(serial, slurm, tmp_path, capsys):
    config = two_models(tmp_path)
    stop, cancelled = threading.Event(), []
    killer = threading.Thread(target=_cancel_first_job, args=(stop, cancelled, frozenset(_queued())), daemon=True)
    killer.start()
    try:
        rc = build(config, "--executor", "slurm", "--cpus-per-job", "1")
    finally:
        stop.set()
        killer.join(timeout=30)
    assert cancelled and rc == 1
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("failed: ")]
    assert f"job {cancelled[0]} cancelled" in line and "_log.err" in line
    report = (tmp_path / "docs" / "build-report.md").read_text()
    assert f"job {cancelled[0]} cancelled" in report  # the failure is listed on the build report
    state = tmp_path / "out" / "state" / "models"
    finished = {p.parent.name: p.stat().st_mtime_ns for p in state.glob("*/key.txt")}
    assert len(finished) == 1  # the other model's job finished and stored its results

    assert build(config, "--executor", "slurm", "--cpus-per-job", "1") == 0  # resume
    now = {p.parent.name: p.stat().st_mtime_ns for p in state.glob("*/key.txt")}
    assert len(now) == 2 and all(now[s] == t for s, t in finished.items())  # nothing recomputed
    assert _pages(tmp_path / "docs") == serial


def test_slurm_bad_partition_is_one_line(slurm, tmp_path, capsys):
    config = two_models(tmp_path)
    assert build(config, "--executor", "slurm", "--partition", "no-such-partition") == 2
    line = error_line(capsys)
    assert "partition 'no-such-partition' does not exist" in line and "choose one of:" in line
    assert not list((tmp_path / "out").rglob("*_submitted.pkl"))  # nothing was submitted


def test_two_builds_of_one_config_at_once(serial, tmp_path):
    """Two builds of the same config at the same time, sharing the output folder and the feature
    cache: both succeed, every cache entry verifies, and the pages equal the serial build's."""
    import sys

    from atlas.features.cache import FeatureCache

    config = two_models(tmp_path)
    procs = [subprocess.Popen([sys.executable, str(REPO / "scripts" / "build_atlas.py"), "--config", str(config),
                               "--docs-dir", str(tmp_path / f"docs{i}"), "--no-site", "-q", "--build-date", DATE],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    cache = FeatureCache(tmp_path / "cache")
    for path in (tmp_path / "cache").glob("*/*.safetensors"):
        assert cache.entries(path.stem), path
    assert not cache.damaged and not list((tmp_path / "cache").glob("*/.tmp-*"))
    assert _pages(tmp_path / "docs1") == _pages(tmp_path / "docs2") == serial



def test_a_job_refuses_a_config_or_code_changed_after_submission(tmp_path):
    """A job may wait hours in a queue: if the config or the code changed meanwhile, its numbers
    would not be the ones the submitting build describes, so it stops before computing anything."""
    from atlas.config import load_config
    from atlas.pipeline import BuildError
    from atlas.pipeline.executors import model_job
    from atlas.pipeline.state import code_fingerprint

    config = project(tmp_path, models=["Tiny A"])
    submitted = load_config(config)
    slug = submitted.backbones[0].slug
    with pytest.raises(BuildError, match=r"atlas code changed after this job was submitted"):
        model_job(str(config), slug, config_hash=submitted.config_hash, code="0" * 16)
    config.write_text(config.read_text() + "\n# edited while the job waited\n", encoding="utf-8")
    with pytest.raises(BuildError, match=r"atlas config changed after this job was submitted"):
        model_job(str(config), slug, config_hash=submitted.config_hash, code=code_fingerprint())
    assert not submitted.resolve_path(submitted.atlas.output_dir).exists()  # nothing computed, nothing stored
