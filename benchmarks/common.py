"""What the benchmark scripts share: a group's MNIST data, the hooks through which every row of a group
and seed fits from one pretrained autoencoder, the autoencoder cache's names, the score columns computed
from kept distances, the CSV rows and markdown tables. Not part of CI."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from toolkit.config import Config, DataConfig, NetConfig, field_table
from toolkit.data import Preprocessor, TensorBatches, as_tensor, load_split
from toolkit.engines import create_evaluator, reconstruction_error
from toolkit.files import atomic_write
from toolkit.handlers import History, attach_evaluation
from toolkit.nets import EVAL_BATCH, build_autoencoder, fast_layout, net_options
from toolkit.stages import Hooks
from toolkit.svdd import combined_scores, score_stats, sphere_scores

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = str(ROOT.parent / "shared" / "data")
MNIST_SHAPE = (1, 28, 28)

# --------------------------------------------------------------------------------------------- data


def load_group(group, root: str) -> tuple[Tensor, Preprocessor, Any]:
    """Preprocessed training tensor (fast layout), the fitted preprocessor and the split of ``group``
    (the detector's fit preprocesses the same way, so its inputs and these are the same tensors)."""
    split = load_split(DataConfig(dataset="mnist", root=root, download=False, normal_classes=tuple(group)))
    x_raw = as_tensor(split.x_train)
    prep = Preprocessor().fit(x_raw)
    return fast_layout(prep(x_raw), "cpu"), prep, split


def preprocess(prep: Preprocessor, x) -> Tensor:
    """Raw images through a fitted preprocessor, in the layout the nets run fastest on."""
    return fast_layout(prep(as_tensor(x)), "cpu")


# --------------------------------------------------------------------------------------------- the shared autoencoder

# The pretraining settings every cached autoencoder so far was trained with; the cache name leaves them
# out, and a different value of any adds a hash of them, so no cache is ever read for another setting.
AE_FIXED: dict[str, Any] = {
    "net.arch": "lenet28",
    "net.rep_dim": 32,
    "net.hidden": (32,),
    "pretrain.lr": 1e-4,
    "pretrain.gamma": 0.1,
    "pretrain.batch_size": 200,
    "pretrain.refresh_bn": False,
}


def autoencoder_key(cfg: Config) -> str:
    """The cache name of the autoencoder that fitting ``cfg`` pretrains: every setting that changes it
    (normal classes, seed, epochs, weight decay, milestones, leak, layer forms; others by hash)."""
    p, net = cfg.pretrain, cfg.net
    key = f"ae-{'-'.join(map(str, cfg.data.normal_classes))}-s{cfg.seed}-e{p.epochs}-wd{p.weight_decay:g}"
    key += f"-m{'_'.join(map(str, p.milestones))}-l{net.leak:g}-{'fused' if net.fused else 'plain'}"
    table = field_table(cfg)
    other = {k: table[k][1] for k, v in AE_FIXED.items() if table[k][1] != v}
    if other:
        key += "-" + hashlib.sha1(json.dumps(other, sort_keys=True).encode()).hexdigest()[:8]
    return key


def cached_autoencoder(path: Path) -> nn.Module:
    """A kept autoencoder, in evaluation mode, built with the net settings its file holds (files kept
    before they were: those its name gives, ``-l{leak}`` and ``-fused``, on the fixed net)."""
    blob = torch.load(path, weights_only=True)
    if "net" in blob:
        kept = json.loads(blob["net"])
        net = NetConfig(**{**kept, "hidden": tuple(kept["hidden"])})
    else:
        leak = float(path.stem.rsplit("-l", 1)[1].split("-")[0])
        fused = path.stem.endswith("-fused")
        net = NetConfig(arch=AE_FIXED["net.arch"], rep_dim=AE_FIXED["net.rep_dim"], leak=leak, fused=fused)
    ae = fast_layout(build_autoencoder(net.arch, MNIST_SHAPE, *net_options(net)), "cpu")
    ae.load_state_dict(blob["state"])
    return ae.eval()


@dataclass
class CachedPretraining(Hooks):
    """Hooks for ``MultiRadiusDeepSVDD.fit`` that pretrain a group's autoencoder once per group and seed:
    ``finished("pretrain")`` gives the kept one (in memory, and in the file ``path`` when set) and
    ``record("pretrain", ...)`` keeps a freshly trained one (the file written atomically), so every row,
    in this process or a later one, starts from the very same weights. With ``eval_raw`` (raw test
    images, is-anomaly flags) each SVDD stage is scored on the test data every ``eval_every`` epochs and
    at the end, as the CLI run does: the test-AUROC curve in ``fit_info_[...]["history"]["tests"]``."""

    path: Path | None = None
    net: NetConfig | None = None  # kept in the file, so the autoencoder can be rebuilt from it alone
    eval_raw: tuple[Tensor, Tensor] | None = None
    eval_every: int = 10

    def __post_init__(self) -> None:
        self.kept: dict[str, Any] | None = None
        self.eval_data: TensorBatches | None = None

    @classmethod
    def for_config(cls, cfg: Config, folder: Path | None, **kw: Any) -> CachedPretraining:
        """Hooks keeping the autoencoder of ``cfg`` in ``folder`` (None: in memory only)."""
        path = None if folder is None else Path(folder) / f"{autoencoder_key(cfg)}.pt"
        return cls(path=path, net=cfg.net, **kw)

    def finished(self, stage: str) -> dict[str, Any] | None:
        if stage != "pretrain":
            return None
        if self.kept is None and self.path is not None and self.path.is_file():
            blob = torch.load(self.path, weights_only=True)
            history = {"epochs": [], "tests": []}  # files kept before the info was: their seconds only
            info = blob.get("info") or json.dumps({"seconds": float(blob["seconds"]), "history": history})
            self.kept = {"autoencoder": blob["state"], "info": info}
        return self.kept

    def record(self, stage: str, payload: dict[str, Any]) -> None:
        if stage != "pretrain":
            return
        state = {k: v.detach().cpu().clone() for k, v in payload["autoencoder"].items()}
        self.kept = {"autoencoder": state, "info": payload["info"]}
        if self.path is not None:
            blob = {"state": state, "seconds": json.loads(payload["info"])["seconds"], "info": payload["info"]}
            if self.net is not None:
                blob["net"] = json.dumps(dataclasses.asdict(self.net))
            atomic_write(self.path, lambda p: torch.save(blob, p))

    def preprocessed(self, prep: nn.Module) -> None:
        if self.eval_raw is not None:
            x = fast_layout(prep(self.eval_raw[0].to(self.device)), self.device)
            self.eval_data = TensorBatches(x, self.eval_raw[1].to(self.device), batch_size=EVAL_BATCH)

    def attach(self, engine: Any, stage: str, to_save: dict[str, Any], history: History, score_fn: Any) -> None:
        if self.eval_data is not None and stage.startswith("svdd"):
            attach_evaluation(engine, create_evaluator(score_fn), self.eval_data, self.eval_every, history)
        super().attach(engine, stage, to_save, history, score_fn)


# --------------------------------------------------------------------------------------------- scores


def auroc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(y), np.asarray(s)))


def recon_errors(ae: nn.Module, *xs: Tensor) -> tuple[Tensor, ...]:
    """The autoencoder's reconstruction error of every point of each preprocessed tensor in ``xs``."""
    ae.eval()
    with torch.inference_mode():
        return tuple(torch.cat([reconstruction_error(ae, b) for b in v.split(4096)]) for v in xs)


def min_scores(blob: dict, rule: str) -> tuple[Tensor, Tensor]:
    """Test and training scores (min_k of the per-sphere score by ``rule``) of a kept model."""
    return tuple(sphere_scores(blob[k], blob["radii"], rule).min(dim=1)[0] for k in ("d_test", "d_train"))


def combined(test: list, train: list, weights=None) -> Tensor:
    """What the detector scores with several columns (``svdd.score_single`` / ``score_recon``: the
    weights after the first, which is 1; all 1 by default): the test columns, each standardised by its
    training mean and spread, weighted and added."""
    weights = torch.ones(len(test)) if weights is None else torch.tensor(weights, dtype=torch.float32)
    return combined_scores(torch.stack(test, dim=1), score_stats(torch.stack(train, dim=1)), weights)


# --------------------------------------------------------------------------------------------- CSV and tables


def read_csv(path: Path, seeds=None) -> list[dict[str, str]]:
    """The finished rows (of training ``seeds`` only, if given); repeated header lines (two runs that
    started the file at once) are skipped."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["group_size"] != "group_size"]
    return [r for r in rows if seeds is None or int(r["seed"]) in seeds]


def markdown_row(cells) -> str:
    return "| " + " | ".join(map(str, cells)) + " |"


def markdown_table(head, rows) -> str:
    """A markdown table: the header, the rule under it, one line per row of cells."""
    return "\n".join([markdown_row(head), "|" + "---|" * len(head), *(markdown_row(r) for r in rows)])
