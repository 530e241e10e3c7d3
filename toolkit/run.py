"""The CLI's run: the detector's own fit, with the run's harness passed in.

``python -m toolkit RECIPE`` resolves the run folder, starts one process or several (``idist.Parallel``:
spawned with ``--backend=gloo --nproc_per_node=N``, or under ``torchrun``) and in each calls
``MultiRadiusDeepSVDD.fit`` with :class:`RunHarness`: finished stages kept in the run folder and taken
from it on ``--resume``, per-epoch checkpoints, TensorBoard, test evaluation, progress bars and Ctrl-C.
At the end rank 0 writes the story (``monitor.py``), the detectors and results.json. The estimator
knows nothing of this module.

With several processes every rank holds the preprocessed training data and trains on its share of each
global batch (DDP averages the gradients); rank 0 clusters and the labels are broadcast; the radius
quantiles use every rank's distances; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ignite.distributed as idist
import numpy as np
import torch
from ignite.contrib.handlers import TensorboardLogger
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint, global_step_from_engine
from torch import Tensor

from . import config as C
from .clustering import agreement, check_clusterer, contingency_markdown
from .data import DataError, Split, TensorBatches, as_tensor, load_split
from .detector import MultiRadiusDeepSVDD
from .engines import create_evaluator
from .files import read_json_checked, write_json
from .handlers import StopRequest, attach_checkpoint, attach_evaluation, attach_sphere_logs
from .inputs import validate
from .monitor import scalar_layout, write_story
from .nets import EVAL_BATCH, fast_layout, resolve_arch
from .overrides import apply_overrides
from .pretext import check_pretraining, pretraining_net, score_terms
from .runfolder import RunFolder, RunFolderError
from .scoring import check_spaces, training_rows
from .stages import FitEvents, Harness, StageStore, resolve_device

log = logging.getLogger("toolkit")


class Interrupted(RuntimeError):
    """The run was stopped (Ctrl-C): after writing a checkpoint, which ``--resume=True`` continues from, or
    before it started, leaving nothing."""


@dataclass
class RunStore(StageStore):
    """The run folder as a fit's stage store: finished stages are kept in it (by rank 0) and, with
    ``resume``, taken from it."""

    run: RunFolder
    resume: bool = False
    rank: int = 0

    def finished(self, stage: str) -> dict[str, Any] | None:
        if not self.resume or (done := self.run.load_stage(stage)) is None:
            return None
        log.info("%s: finished earlier, taken from %s", stage, self.run.stage_path(stage))
        return done

    def record(self, stage: str, payload: dict[str, Any]) -> None:
        if self.rank == 0:
            self.run.save_stage(stage, payload)

    def where(self, stage: str) -> str:
        return str(self.run.checkpoints)


@dataclass
class RunHarness(Harness):
    """The CLI run's harness: the run folder's stages and checkpoints (and resume), TensorBoard, test
    evaluation every ``eval_every`` epochs, progress bars and the Ctrl-C stop, each a handler on the
    fit's events."""

    run: RunFolder | None = None
    resume: bool = False
    tb: TensorboardLogger | None = None
    eval_raw: tuple[Tensor, Tensor] | None = None  # raw test data and is-anomaly flags
    eval_every: int = 1
    true_classes: Any = None  # diagnostics only: the agreement of the pseudo-labels with the classes
    stop: StopRequest | None = None

    def __post_init__(self) -> None:
        # not super().__post_init__(): the progress display is attached below, after evaluation and TensorBoard
        self.eval_data: TensorBatches | None = None
        if self.run is not None:
            self.store = RunStore(self.run, self.resume, self.rank)
        on = self.events.add_event_handler
        on(FitEvents.PREPROCESSED, self._keep_train_rows)
        if self.eval_raw is not None and self.rank == 0:
            on(FitEvents.PREPROCESSED, self._preprocess_test_data)
        if self.rank == 0:
            on(FitEvents.CLUSTERED, self._report_clusters)
        if self.eval_raw is not None:
            on(FitEvents.STAGE_STARTED, self._attach_evaluation)
        if self.tb is not None:
            on(FitEvents.STAGE_STARTED, self._attach_tensorboard)
        self.show_progress()
        if self.run is not None:
            on(FitEvents.STAGE_STARTED, self._attach_checkpoints)
        if self.stop is not None:
            on(FitEvents.STAGE_STARTED, lambda e: self.stop.attach(e.state.trainer))
            on(FitEvents.STAGE_COMPLETED, self._stop_if_asked)

    def _keep_train_rows(self, events: Engine) -> None:
        self.train_rows = events.state.train_rows

    def _preprocess_test_data(self, events: Engine) -> None:
        x = fast_layout(events.state.preprocessor(self.eval_raw[0].to(self.device)), self.device)
        self.eval_data = TensorBatches(x, self.eval_raw[1].to(self.device), batch_size=EVAL_BATCH)

    def _report_clusters(self, events: Engine) -> None:
        info = events.state.clustering
        if self.true_classes is not None:  # the true classes never reach training
            classes = np.asarray(self.true_classes)[self.train_rows.numpy()]  # the rows that trained
            info["agreement"] = agreement(classes, events.state.labels.cpu().numpy())
        if self.tb is not None:
            _log_clustering(self.tb.writer, info)

    def _attach_evaluation(self, events: Engine) -> None:
        s = events.state
        s.evaluator = None
        if self.eval_data is not None and s.score_fn is not None:
            s.evaluator = create_evaluator(s.score_fn)
            attach_evaluation(s.trainer, s.evaluator, self.eval_data, self.eval_every, s.history)

    def _attach_tensorboard(self, events: Engine) -> None:
        """Ignite's output and optimizer handlers, the test metrics and the spheres' own logs."""
        s = events.state
        self.tb.attach_output_handler(s.trainer, Events.EPOCH_COMPLETED, tag=s.stage, metric_names=["loss"])
        self.tb.attach_opt_params_handler(s.trainer, Events.EPOCH_STARTED, s.to_save["optimizer"], tag=s.stage)
        if getattr(s, "evaluator", None) is not None:
            step = global_step_from_engine(s.trainer, Events.EPOCH_COMPLETED)
            self.tb.attach_output_handler(
                s.evaluator,
                Events.COMPLETED,
                tag=f"{s.stage}/test",
                metric_names=["auroc", "aupr"],
                global_step_transform=step,
            )
        attach_sphere_logs(self.tb.writer, s.trainer, s.stage, s.history)

    def _attach_checkpoints(self, events: Engine) -> None:
        """Per-epoch checkpoints; with ``resume``, the stage goes on from its latest one."""
        s = events.state
        attach_checkpoint(s.trainer, s.to_save, self.run.checkpoints, s.stage)
        if self.resume and (found := self.run.load_latest_checkpoint(s.stage)) is not None:
            Checkpoint.load_objects(s.to_save, found[1])
            log.info("%s: resuming from %s (epoch %d)", s.stage, found[0].name, s.trainer.state.epoch)

    def _stop_if_asked(self, events: Engine) -> None:
        if self.stop.requested:
            raise Interrupted(
                f"stopped after epoch {events.state.trainer.state.epoch} of {events.state.stage}, its checkpoint "
                "written; rerun the same command with --resume=True to continue"
            )


def _log_clustering(writer: Any, cinfo: dict[str, Any]) -> None:
    """Cluster sizes before and after the tidy-up, and the agreement with the true classes if known."""
    for tag in ("sizes_before", "sizes"):
        for k, size in enumerate(cinfo[tag]):
            writer.add_scalar(f"clustering/{tag}", size, k)
    writer.add_scalar("clustering/n_clusters", len(cinfo["sizes"]), 0)
    writer.add_text(
        "clustering/summary",
        f"{len(cinfo['sizes_before'])} clusters ({cinfo['n_noise']} noise points) from `{cinfo['clusterer']}`, "
        f"{len(cinfo['sizes'])} after tidy-up (min size {cinfo['min_size']}): sizes {cinfo['sizes']}",
        0,
    )
    if "agreement" in cinfo:
        a = cinfo["agreement"]
        writer.add_scalar("clustering/ari", a["ari"], 0)
        writer.add_scalar("clustering/nmi", a["nmi"], 0)
        writer.add_text("clustering/contingency", contingency_markdown(a), 0)


# --------------------------------------------------------------------------------------------- the job


def resolve_run_dir(cfg: C.Config) -> Path:
    """``run_dir``; or, unset, a new ``runs/<name>-<time>`` (with ``resume``, the newest existing one)."""
    if cfg.run_dir:
        return Path(cfg.run_dir)
    if cfg.resume:
        found = sorted(p for p in Path("runs").glob(f"{cfg.name}-*") if (p / "config.json").is_file())
        if not found:
            raise RunFolderError(f"--resume: no run of {cfg.name!r} under runs/; pass --run_dir=FOLDER")
        return found[-1]
    return Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _free_port() -> int:
    """A free local TCP port for the spawned processes' rendezvous (a fixed one may still be taken)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def run(cfg: C.Config, *, progress: bool = True) -> dict[str, Any]:
    """The whole job behind ``python -m toolkit RECIPE``; writes everything into the run folder.

    Everything that can be checked is checked here, before any process is spawned or any training
    starts: the device, the clusterer and the pretraining method with their options, the run folder
    (checked and locked before any data are loaded or downloaded), the data and the nets for them. The
    launching process (rank 0 under torchrun) holds the folder's lock until the run ends. A start that
    fails before the run's config.json is written takes away the lock and the folders it made; a folder
    holding a symbolic link is refused (nothing is written through one)."""
    if not cfg.dist.backend:
        resolve_device(cfg.device)
    elif cfg.dist.backend == "nccl" and torch.cuda.device_count() < max(1, cfg.dist.nproc_per_node):
        raise C.ConfigError(
            f"--backend=nccl runs one process per NVIDIA GPU: {cfg.dist.nproc_per_node} asked for, "
            f"{torch.cuda.device_count()} here; use --backend=gloo (CPU processes) or fewer --nproc_per_node"
        )
    check_clusterer(cfg.clustering, seed=cfg.seed, n_normal_classes=len(cfg.data.normal_classes))
    cfg.score.check()
    method = check_pretraining(cfg)
    torchrun = _under_torchrun()  # checked here: idist.Parallel's own children have these variables too
    check_batch_sizes(cfg, int(os.environ.get("WORLD_SIZE", 1)) if torchrun else cfg.dist.nproc_per_node)
    run_dir = resolve_run_dir(cfg)
    cfg = apply_overrides(cfg, {"run_dir": str(run_dir)})
    launcher = not torchrun or os.environ.get("RANK", "0") == "0"
    folder = RunFolder(run_dir)
    created = folder.missing()  # what a start that fails before config.json takes away again
    started = False
    try:
        if launcher:
            if folder.path.is_dir():
                folder.lock()  # first, so that a run working there now is named before anything else
            folder.check(cfg, cfg.resume)
            folder.lock()  # a new folder: created only once the checks passed
        split = load_split(cfg.data, cfg.seed)
        check_training_data(cfg, split.x_train)  # what fit would refuse, before the run folder is written
        arch = resolve_arch(cfg.net.arch, split.input_shape)  # a net for these data, before the run folder is written
        with torch.device("meta"):  # built without memory or random draws, only to be refused here if it must
            pretraining_net(method, arch, split.input_shape, cfg.net)
        if launcher:
            folder.start(cfg, cfg.resume)  # config.json once the data are there: a data error leaves no run
            log.info("run folder: %s (tensorboard --logdir %s)", folder.path, folder.path)
        started = True
        if cfg.dist.backend:
            spawn = {} if torchrun else {"nproc_per_node": cfg.dist.nproc_per_node, "master_port": _free_port()}
            with idist.Parallel(backend=cfg.dist.backend, **spawn) as parallel:
                parallel.run(_process, cfg, progress, None, torchrun)
        else:
            _process(0, cfg, progress, split, False)
    except BaseException as e:
        if launcher and not started:  # a failed start leaves no folder holding only its lock
            folder.discard(created)
            if isinstance(e, KeyboardInterrupt):
                raise Interrupted("before the run started: no run was written; run the command again") from None
        raise
    finally:
        with contextlib.suppress(OSError):  # never hides why the run ended
            folder.unlock()
    if not launcher:
        return {}  # under torchrun every process runs this function; rank 0 reports
    results = read_json_checked(run_dir / "results.json")
    results["run_dir"] = str(run_dir)
    return results


def check_training_data(cfg: C.Config, x_train: np.ndarray) -> None:
    """Refuse training data that ``fit`` would refuse (non-finite values, too few rows for the settings, a
    score term that cannot measure them), naming the data set, so that a start with them writes no run."""
    try:
        x = validate(x_train, fitting=True)
    except ValueError as e:
        raise DataError(f"data.dataset={cfg.data.dataset!r}: {e}") from None
    training_rows(cfg.score, len(x), cfg.seed)
    check_spaces(cfg.score, tuple(x.shape[1:]))


def check_batch_sizes(cfg: C.Config, world: int) -> None:
    """Each process trains on its share of every batch, and the nets' batch normalisation needs two or more
    rows of it."""
    for stage in ("pretrain", "svdd"):
        size = getattr(cfg, stage).batch_size
        if world > 1 and size < 2 * world:
            raise C.ConfigError(
                f"--{stage}.batch_size={size} is too small for {world} processes: each trains on its share of a "
                f"batch, and batch normalisation needs two or more rows of it; use --{stage}.batch_size={2 * world} "
                "or more"
            )


def threads_per_process(threads: int, nproc: int) -> int:
    """Each of ``nproc`` CPU processes on a machine gets its share of the ``threads`` one process would
    use (at least 1): N spawned processes with every core each oversubscribe the cores (measured four
    times slower on 2 cores, docs/distributed.md). torchrun sets OMP_NUM_THREADS itself, and a set
    OMP_NUM_THREADS is left alone."""
    return max(1, threads // max(1, nproc))


def _process(local_rank: int, cfg: C.Config, progress: bool, split: Split | None, torchrun: bool) -> None:
    """One process's share of the run (the only process, or one rank under idist.Parallel)."""
    rank, world = idist.get_rank(), idist.get_world_size()
    device = idist.device() if cfg.dist.backend else resolve_device(cfg.device)
    if world > 1 and device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(threads_per_process(torch.get_num_threads(), idist.get_nproc_per_node()))
    folder = RunFolder(cfg.run_dir)
    if torchrun:  # every process ran run(): rank 0 set up the folder there
        idist.barrier()
    split = split if split is not None else load_split(cfg.data, cfg.seed)
    tb = None
    if rank == 0:
        tb = TensorboardLogger(log_dir=str(folder.path))
        models = ["multi", "single"] if cfg.baseline or cfg.score.single > 0 else ["multi"]
        tb.writer.add_custom_scalars(scalar_layout(models))
    t0 = time.perf_counter()
    det = MultiRadiusDeepSVDD(cfg, device=str(device))
    with StopRequest() as stop:
        harness = RunHarness(
            device=device,
            progress=cfg.progress if progress else "none",
            baseline=cfg.baseline,
            rank=rank,
            world=world,
            run=folder,
            resume=cfg.resume,
            tb=tb,
            eval_raw=(as_tensor(split.x_test), torch.from_numpy(split.is_anomaly_test)) if split.labelled else None,
            eval_every=cfg.eval_every,
            true_classes=split.named(split.y_train) if split.labelled and split.train_labelled else None,
            stop=stop,
        )
        try:
            det.fit(split.x_train, harness=harness)
            detectors = {"multi": det, **({"single": det.baseline_} if det.baseline_ is not None else {})}
            if rank == 0:
                folder.check_links()  # the projector's files are written by TensorBoard, through any link
                final = write_story(tb.writer, folder.path, cfg, split, detectors, det.autoencoder_.encoder)
        except BaseException:
            if tb is not None:
                with contextlib.suppress(Exception):  # a second error (a full disk) never hides the first
                    tb.close()
            raise
        if tb is not None:
            tb.close()
    if rank != 0:
        return
    info = det.fit_info_
    for name, d in detectors.items():
        if split.feature_names is not None:  # a table's columns: the score verb refuses a table without them
            d.feature_names_in_ = np.asarray(split.feature_names, dtype=object)
        d.save(folder.path / f"detector_{name}.pt")
        info[name].update(final[name])  # the final detector's own scores (also right after a resume)
        info[name]["threshold"] = d.threshold_
        info[name]["score"] = score_terms(d.resolved_config())
    results = {
        "name": cfg.name,
        "dataset": cfg.data.dataset,
        "normal_classes": list(cfg.data.normal_classes) if split.labelled else None,  # None: unlabelled, all normal
        "device": str(device),
        "processes": world,
        "threads_per_process": torch.get_num_threads() if device.type == "cpu" else None,
        "n_test": int(split.x_test.shape[0]),
        "n_test_anomalies": int(split.is_anomaly_test.sum()),
        "seconds": time.perf_counter() - t0,
        **info,
    }
    write_json(folder.path / "results.json", results, checked=True)
