"""Where the models of a build are computed: here, one after the other (``serial``), as separate
processes on this machine (``local``), or as jobs of a Slurm cluster (``slurm``), both through
`submitit <https://github.com/facebookincubator/submitit>`_.

One job per model: :func:`model_job` runs extraction, clustering, measures and evaluation of one
model and stores its results under its model key (``<output_dir>/state``); no feature cache is
shared (features stream through each job's analyses; with ``[features] cache = true`` jobs share
that cache). Every file is written atomically (temp file + rename, the temp file named after its
writer), so a job killed mid-way leaves nothing that a later run reads as valid, and two jobs or
builds writing into one folder do not disturb each other. When the jobs have
finished, the submitting process reads their stored results and builds the comparisons and the
site, listing failed jobs on the build report. Rerunning the same command resumes: a model whose
stored results are current is read by the submitting process and sent as no job.

Example::

    jobs = ModelJobs(cfg, "local", executor_settings(cfg, workers=2))
    results = build_atlas(cfg, executor=jobs)
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import shutil
import time
from pathlib import Path

from pydantic import ValidationError

from tqdm.auto import tqdm

from ..config import AtlasConfig, Backbone, ExecutorSection, load_config
from . import BuildError
from .state import code_fingerprint

log = logging.getLogger(__name__)

EXECUTORS = ("serial", "local", "slurm")
POLL_S = 1.0  # how often the state of running jobs is checked


def check_executor(name: str) -> str:
    """The executor's name, or a one-line error with the closest valid name.

    >>> check_executor("slurm")
    'slurm'
    >>> check_executor("slrum")
    Traceback (most recent call last):
    ...
    atlas.pipeline.BuildError: --executor: unknown executor 'slrum'; choose serial, local or slurm (closest: slurm)
    """
    if name in EXECUTORS:
        return name
    close = difflib.get_close_matches(name, EXECUTORS, n=1, cutoff=0.0)
    raise BuildError(f"--executor: unknown executor {name!r}; choose serial, local or slurm (closest: {close[0]})")


def executor_settings(cfg: AtlasConfig, **overrides) -> ExecutorSection:
    """The config's ``[executor]`` section with the command line's values on top (None: not given),
    validated as the config is (a bad flag value is one line naming the flag).

    >>> from atlas.config import parse_config
    >>> cfg = parse_config('[executor]\\nworkers = 2\\n[[backbones]]\\ndisplay_name = "m"\\n'
    ...                    'timm_name = "vit_small_patch16_224"\\nweights = "random"\\ntraining = "random"')
    >>> executor_settings(cfg, workers=None, time_min=30).workers, executor_settings(cfg, time_min=30).time_min
    (2, 30)
    """
    values = cfg.executor.model_dump() | {k: v for k, v in overrides.items() if v is not None}
    try:
        return ExecutorSection(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "[executor]"
        raise BuildError(f"{flag}: {first['msg']} (got {first.get('input')!r})") from None


def model_job(config_path: str, slug: str, threads: int = 0, gpu: int | None = None,
              config_hash: str | None = None, code: str | None = None) -> dict:
    """One model of a build, in its own process: compute (or find current) and store its results.

    Returns ``{"slug", "keys" ({run id: key}), "reused", "seconds", "model_s", "process_start", "model_start"}``
    (``seconds``: the job from its start in Python; ``model_s``: loading and computing the model, as
    the serial build does; the two starts as Unix times, for the overhead in
    ``bench/bench_executors.py``). ``gpu`` pins the job to one GPU (local
    executor); ``threads`` limits torch's CPU threads (its share of the cores). ``config_hash`` and
    ``code`` (:func:`atlas.pipeline.state.code_fingerprint`) are the submitting build's: a job that
    starts after the config or the code changed (it may wait hours in a queue) refuses to compute,
    since its numbers would not be those the build describes.
    """
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before torch initialises CUDA
    import torch

    from .build import compute_model, prepare_build

    # the job's share of the cores: what it was given, or what Slurm allotted (clusters without
    # cgroups do not stop a job from using every core of its node)
    allotted = os.environ.get("SLURM_CPUS_PER_TASK") or os.environ.get("SLURM_JOB_CPUS_PER_NODE", "")
    threads = threads or int(re.match(r"\d*", allotted).group() or 0)
    if threads:
        torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    cfg = load_config(config_path)
    changed = [what for what, now, then in (("config", cfg.config_hash, config_hash), ("code", code_fingerprint(), code))
               if then is not None and now != then]
    if changed:
        raise BuildError(f"the atlas {' and '.join(changed)} changed after this job was submitted "
                         f"({config_path}); re-run the build to compute with the new one")
    (spec,) = cfg.select_backbones([slug])
    inputs = prepare_build(cfg, [spec])
    t1 = time.perf_counter()
    computed = compute_model(inputs, spec, progress=False)
    t2 = time.perf_counter()
    return {"slug": slug, "keys": {c.run.run_id: c.key for c in computed}, "reused": all(c.reused for c in computed),
            "seconds": round(t2 - t0, 2), "model_s": round(t2 - t1, 2),
            "process_start": _process_start(), "model_start": time.time() - (t2 - t1)}


def _process_start() -> float | None:
    """When this process started (Unix time; Linux), to tell queueing from start-up in a job's wall time."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class ModelJobs:
    """Runs :func:`model_job` for every model of a build through submitit and waits for them."""

    def __init__(self, cfg: AtlasConfig, kind: str, settings: ExecutorSection | None = None, progress: bool = True):
        if check_executor(kind) == "serial":
            raise ValueError("the serial executor runs no jobs; pass executor=None to build_atlas")
        settings = settings or cfg.executor
        if kind == "slurm" and shutil.which("sbatch") is None:
            raise BuildError("--executor slurm: sbatch is not on PATH; run the build on a Slurm login node, "
                             "or use --executor local")
        if kind == "slurm" and settings.partition:
            _check_partition(settings.partition)
        self.cfg, self.kind, self.settings, self.progress = cfg, kind, settings, progress
        out = cfg.resolve_path(cfg.atlas.output_dir)
        self.log_dir = cfg.resolve_path(settings.log_dir) if settings.log_dir else out / "jobs"
        self.config_path = str(Path(cfg.source_path).resolve())
        self._waited: dict[str, float] = {}
        #: per model: job id, wall seconds from submission to result, and the job's own figures
        self.report: dict[str, dict] = {}

    def _executor(self, name: str):
        import submitit

        # without an accounting database sacct fails on every poll; submitit then reads the job's
        # own result file, which is all the atlas needs: its warning would only be noise
        logging.getLogger("submitit").setLevel(logging.ERROR)

        s = self.settings
        ex = submitit.AutoExecutor(folder=self.log_dir, cluster=self.kind)
        params: dict = {"name": name, "timeout_min": s.time_min}
        if self.kind == "slurm":
            params.update(gpus_per_node=s.gpus_per_job, slurm_additional_parameters=dict(s.sbatch_args))
            if s.partition:
                params["slurm_partition"] = s.partition
            if s.cpus_per_job:
                params["cpus_per_task"] = s.cpus_per_job
            if s.mem_gb:
                params["mem_gb"] = s.mem_gb
        ex.update_parameters(**params)
        return ex

    def _local_slots(self) -> tuple[int, list[int | None], int]:
        """(jobs at a time, the GPU of each slot or None, torch threads per job)."""
        import torch

        gpus = torch.cuda.device_count()
        workers = self.settings.workers or max(1, gpus)
        slot_gpus = [i % gpus if gpus else None for i in range(workers)]
        threads = self.settings.cpus_per_job or max(1, (os.cpu_count() or 1) // workers)
        return workers, slot_gpus, threads

    def run(self, backbones: list[Backbone]) -> tuple[dict[str, tuple[str, float]], dict[str, str]]:
        """Run one job per model; return ({slug: (model key, seconds)} of the jobs that finished,
        {slug: one-line reason with job id and log path} of those that failed)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        pending = list(backbones)
        running: dict = {}  # job -> (spec, slot)
        done: dict[str, tuple[str, float]] = {}
        failed: dict[str, str] = {}
        if self.kind == "local":
            workers, slot_gpus, threads = self._local_slots()
        else:
            workers, slot_gpus, threads = len(pending), [None] * len(pending), self.settings.cpus_per_job
        free = list(range(workers))
        bar = tqdm(total=len(pending), desc=f"model jobs ({self.kind})", unit="job",
                   disable=not self.progress)

        def submit(spec: Backbone, slot: int):
            ex = self._executor(f"atlas-{spec.slug}")
            try:
                job = ex.submit(model_job, self.config_path, spec.slug, threads, slot_gpus[slot],
                                self.cfg.config_hash, code_fingerprint())
            except Exception as exc:  # sbatch refused it: bad partition, limits, ...
                text = str(exc).strip().splitlines()
                raise BuildError(f"--executor {self.kind}: could not submit the job of {spec.display_name}: "
                                 f"{text[-1] if text else type(exc).__name__}") from None
            log.info("%s: job %s submitted (logs: %s)", spec.display_name, job.job_id, job.paths.stdout.parent)
            running[job] = (spec, slot)
            self.report[spec.slug] = {"job_id": job.job_id, "submitted_at": time.time()}

        try:
            while pending or running:
                while pending and free:
                    submit(pending.pop(0), free.pop(0))
                time.sleep(POLL_S)
                for job in list(running):
                    outcome = self._outcome(job)
                    if outcome is None:
                        continue
                    spec, slot = running.pop(job)
                    free.append(slot)
                    entry = self.report[spec.slug]
                    entry["seen_at"] = time.time()
                    entry["wall_s"] = round(entry["seen_at"] - entry["submitted_at"], 2)
                    if isinstance(outcome, dict):
                        entry.update(outcome)
                        done[spec.slug] = (outcome["keys"], outcome["seconds"])
                        log.info("%s: job %s %s in %.0f s", spec.display_name, job.job_id,
                                 "found its results current" if outcome["reused"] else "done", outcome["seconds"])
                    else:
                        failed[spec.slug] = outcome
                        log.error("%s: %s", spec.display_name, outcome)
                    bar.update(1)
                bar.set_postfix(running=len(running), failed=len(failed))
        except KeyboardInterrupt:
            for job in running:
                job.cancel(check=False)
            raise
        finally:
            bar.close()
        return done, failed

    def _outcome(self, job) -> dict | str | None:
        """None while the job runs; its result (dict) when it returned; else one line saying why not.

        Read from the job's own files and, on Slurm, from ``scontrol`` (which knows finished jobs
        for MinJobAge seconds): ``sacct`` needs an accounting database that many clusters, and the
        test cluster, do not have, and submitit cannot tell a cancelled job from a running one
        without it.
        """
        from submitit.core.utils import pickle_load

        result = job.paths.result_pickle
        if result.exists():
            try:
                status, value = pickle_load(result)
            except Exception:  # still being written (the job renames it into place, but NFS may lag)
                return None
            if status == "success":
                return value
            if "timed-out" in str(value):  # submitit's own handling of Slurm's time-limit signal
                return self._timed_out(job)
            return _reason(job, "failed", str(value))
        if self.kind == "local":
            if not job.done():
                return None
            return _reason(job, "failed", _log_tail(job))
        state = _slurm_state(job.job_id)
        if state in _ACTIVE:
            return None
        if state == "COMPLETED" or state is None:  # result file not visible yet, or job purged
            waited = self._waited.setdefault(job.job_id, time.monotonic())
            if time.monotonic() - waited < RESULT_GRACE_S:
                return None
            return _reason(job, (state or "gone").lower(), "finished without writing its result")
        if state == "TIMEOUT":
            return self._timed_out(job)
        return _reason(job, state.lower(), _log_tail(job))

    def _timed_out(self, job) -> str:
        return (f"job {job.job_id} timed out: it ran into its time limit of {self.settings.time_min} min; raise "
                f"[executor] time_min or --time-min (log: {job.paths.stderr})")


RESULT_GRACE_S = 60.0  # how long a finished job's result file may take to appear (shared file systems)
_ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED")


def _check_partition(name: str) -> None:
    """A one-line error naming the cluster's partitions when ``name`` is not one of them."""
    import subprocess

    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return  # sbatch will say it
    partitions = [p.rstrip("*") for p in out.split()]
    if partitions and name not in partitions:
        raise BuildError(f"--executor slurm: partition {name!r} does not exist on this cluster; "
                         f"choose one of: {', '.join(partitions)}")


def _slurm_state(job_id: str) -> str | None:
    """The job's state from ``scontrol show job`` (None once Slurm has forgotten it)."""
    import subprocess

    done = subprocess.run(["scontrol", "show", "job", "-o", str(job_id).split("_")[0]], capture_output=True, text=True)
    found = re.search(r"JobState=(\w+)", done.stdout)
    return found.group(1) if found else None


def _log_tail(job) -> str:
    """The job's stderr log (where Slurm writes CANCELLED / TIME LIMIT and Python its traceback)."""
    try:
        return job.paths.stderr.read_text(errors="replace")
    except OSError:
        return "no log"


def _reason(job, state: str, detail: str) -> str:
    """One line: the job, its state, the last error line of ``detail`` (or its last line), its log."""
    lines = [ln.strip() for ln in detail.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "rror" in ln or "CANCELLED" in ln or "TIME LIMIT" in ln]
    last = ((errors or lines or ["no detail"])[-1])[:300]
    return f"job {job.job_id} {state}: {last} (log: {job.paths.stderr})"
