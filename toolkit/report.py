"""``python -m toolkit report RUN_DIR``: PNG figures and a report.md, from a finished run folder alone.

- ``roc.png``: test ROC curves of the multi-radius model and the one-sphere baseline on one plot;
- ``scores.png``: their precision-recall curves, and the distribution of the test scores of normal
  and anomalous points, with the threshold;
- ``training.png``: radius of every cluster per epoch, and the loss curves (the seed report's Figure 7);
- ``embeddings.png``: a 2-D map (t-SNE or PCA) of training embeddings after pretraining, coloured by
  pseudo-label and by true class (Figure 6);
- ``extremes.png``: the most normal and most anomalous test images of each model (Figure 9).

and :func:`summary`, the short table a run prints when it ends, from its results.json.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .clustering import contingency_markdown
from .files import ChecksumError, UncheckedFileError, atomic_write, describe, load_npz_checked, read_json_checked
from .monitor import MODELS, as_images

log = logging.getLogger("toolkit")

DPI = 100
PROJECTIONS = ("tsne", "pca")  # the 2-D maps of the embeddings figure
SIZES = {
    "roc.png": (6, 5),
    "scores.png": (12, 4.5),
    "training.png": (12, 4.5),
    "embeddings.png": (12, 5.5),
    "extremes.png": (12, 6),
}


class ReportError(RuntimeError):
    """A run folder the report cannot read or write into; the message says what to do."""


def expected_pixels(name: str) -> tuple[int, int]:
    """(width, height) in pixels of each figure the report writes."""
    w, h = SIZES[name]
    return round(w * DPI), round(h * DPI)


def _load(run_dir: Path, name: str) -> Any:
    p = run_dir / name
    if not p.is_file():
        raise ReportError(
            f"{p} is missing: is {run_dir} a finished run folder (python -m toolkit RECIPE writes one)? A run "
            f"stopped before its end writes it once continued: python -m toolkit --run_dir={run_dir} --resume=True"
        )
    try:
        return read_json_checked(p) if name.endswith(".json") else load_npz_checked(p)
    except UncheckedFileError as e:
        raise ReportError(
            f"{describe(e)}; start a new run with this version (python -m toolkit RECIPE) and report on that"
        ) from None
    except (ChecksumError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ReportError(
            f"{p} is damaged ({describe(e)}); write it again with python -m toolkit --run_dir={run_dir} "
            "--resume=True (its finished stages are reused)"
        ) from None


def _target(run_dir: Path, name: str) -> Path:
    """Where the report writes ``name``: a plain file directly inside the run folder, never through a
    symbolic link (which could point anywhere)."""
    p = run_dir / name
    if p.is_symlink():
        raise ReportError(f"{p} is a symbolic link; the report writes only plain files in the run folder: remove it")
    if p.exists() and not p.is_file():
        raise ReportError(f"{p} is not a plain file; the report writes {name} there: move it away")
    return p


def _figure(name: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=SIZES[name], dpi=DPI)


def _save(plt, fig, path: Path) -> Path:
    try:  # no tight bbox: every figure has its documented pixel size
        atomic_write(_target(path.parent, path.name), lambda p: fig.savefig(p, dpi=DPI, format="png"))
    finally:
        plt.close(fig)
    return path


def roc_figure(run_dir: Path, scores: Any) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    plt, fig = _figure("roc.png")
    ax = fig.add_subplot(1, 1, 1)
    y = scores["is_anomaly"]
    for name, label in MODELS.items():
        if f"{name}_score" in scores:
            s = scores[f"{name}_score"]
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, label=f"{label} (AUROC {roc_auc_score(y, s):.4f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Test ROC (anomaly = positive)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(plt, fig, run_dir / "roc.png")


def scores_figure(run_dir: Path, scores: Any, results: dict[str, Any]) -> Path:
    """Precision-recall curves (anomalies positive), and each model's test scores as two histograms,
    normal and anomalous points, with the detector's threshold."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt, fig = _figure("scores.png")
    y = scores["is_anomaly"].astype(bool)
    models = [m for m in MODELS if f"{m}_score" in scores]
    labelled = results.get("normal_classes") is not None  # unlabelled data: no anomalies, no curve
    if labelled:
        ax = fig.add_subplot(1, len(models) + 1, 1)
        for m in models:
            p, r, _ = precision_recall_curve(y, scores[f"{m}_score"])
            ax.plot(r, p, label=f"{MODELS[m]} (AUPR {average_precision_score(y, scores[f'{m}_score']):.4f})")
        ax.axhline(y.mean(), color="k", ls=":", lw=0.8)
        ax.set(xlabel="recall", ylabel="precision", title="Test precision-recall (anomaly = positive)")
        ax.title.set_fontsize(9)
        ax.legend(loc="lower left", fontsize=7)
    for i, m in enumerate(models):
        ax = fig.add_subplot(1, len(models) + labelled, i + 1 + labelled)
        s = scores[f"{m}_score"]
        bins = np.histogram_bin_edges(s[np.isfinite(s)], bins=60)
        ax.hist(s[~y], bins=bins, alpha=0.6, density=True, label="normal" if labelled else "training items")
        if labelled:
            ax.hist(s[y], bins=bins, alpha=0.6, density=True, label="anomalous")
        if results.get(m, {}).get("threshold") is not None:
            ax.axvline(results[m]["threshold"], color="k", ls="--", lw=1, label="threshold")
        ax.set(xlabel="score (higher = more anomalous)", yticks=[], title=f"{MODELS[m]}: test scores")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(plt, fig, run_dir / "scores.png")


def training_figure(run_dir: Path, results: dict[str, Any]) -> Path:
    plt, fig = _figure("training.png")
    ax_r, ax_l = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    epochs = results["multi"]["history"]["epochs"]
    e = [row["epoch"] for row in epochs]
    dot = _dot(len(e))
    if all("radii" in row for row in epochs):
        radii = np.array([row["radii"] for row in epochs])
        for k in range(radii.shape[1]):
            ax_r.plot(e, radii[:, k], label=f"cluster {k}", **dot)
        title = "Radius of each cluster"
    else:  # more spheres than can be drawn one by one: their spread (handlers.sphere_spread)
        q = np.array([row["radius_quantiles"] for row in epochs])
        ax_r.fill_between(e, q[:, 0], q[:, 4], alpha=0.2, label="min to max")
        ax_r.fill_between(e, q[:, 1], q[:, 3], alpha=0.4, label="quartiles")
        ax_r.plot(e, q[:, 2], label="median", **dot)
        title = f"Radii of the {len(results['multi']['radii'])} clusters"
    if "single" in results:
        single = results["single"]["history"]["epochs"]
        radius = [r["radii"][0] for r in single]
        ax_r.plot([r["epoch"] for r in single], radius, "k--", label="one sphere", **_dot(len(single)))
    ax_r.set(xlabel="SVDD epoch", ylabel="radius R_k", title=title)
    ax_r.legend(fontsize=7, ncol=2)
    for key, label in (("multi", "SVDD, multi-radius"), ("single", "SVDD, one sphere")):
        if key in results:
            h = results[key]["history"]["epochs"]
            ax_l.plot([r["epoch"] for r in h], [r["loss"] for r in h], label=label, **_dot(len(h)))
    ax_l.set(xlabel="epoch", ylabel="mean loss", title="Training loss", yscale="log")
    ax_l.legend()
    fig.tight_layout()
    return _save(plt, fig, run_dir / "training.png")


def _dot(points: int) -> dict[str, Any]:
    """A line's style for ``points`` values: a dot where there is one (a line of one point draws nothing)."""
    return {"marker": "o", "markersize": 4} if points == 1 else {}


def project_2d(z: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    if method == "pca" or len(z) < 5:
        zc = z - z.mean(0)
        _, _, vt = np.linalg.svd(zc, full_matrices=False)
        return zc @ vt[:2].T
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(
            n_components=2, init="pca", random_state=seed, perplexity=min(30.0, (len(z) - 1) / 3)
        ).fit_transform(z)
    raise ReportError(f"projection {method!r} is unknown; accepted: tsne, pca")


def embeddings_figure(run_dir: Path, emb: Any, method: str) -> Path:
    log.info("report: %s of %d x %d embeddings", method.upper(), *emb["train_z"].shape)
    xy = project_2d(emb["train_z"], method)
    plt, fig = _figure("embeddings.png")
    # clusters and classes are different things: their own palettes, markers and names, so that cluster 1
    # is not read as class 1
    panels = (
        ("train_cluster", "pseudo-label (cluster)", "cluster", "Dark2", "^"),
        ("train_class", "true class", "class", "tab10", "o"),
    )
    known = bool(emb["train_classes_known"]) if "train_classes_known" in emb else True
    for i, (key, title, name, palette, marker) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        c = emb[key]
        unlabelled = key == "train_class" and not known  # unlabelled training data: no class to show
        if unlabelled:
            title, name = "true class (none given: all normal)", "all normal"
        colours = plt.get_cmap(palette)
        for j, v in enumerate(np.unique(c)):
            sel = c == v
            label = name if unlabelled else f"{name} {v}"
            ax.scatter(xy[sel, 0], xy[sel, 1], s=5, marker=marker, color=colours(j % colours.N), label=label)
        ax.set(title=f"Training embeddings after pretraining ({method.upper()}), by {title}", xticks=[], yticks=[])
        ax.title.set_fontsize(9)
        ax.legend(markerscale=3, fontsize=7, ncol=2)
    fig.tight_layout()
    return _save(plt, fig, run_dir / "embeddings.png")


def _grid(images: np.ndarray, cols: int) -> np.ndarray:
    n, c, h, w = images.shape
    rows = max(1, -(-n // cols))
    out = np.ones((rows * (h + 1), cols * (w + 1), c), dtype=np.float32)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = img.transpose(1, 2, 0)
    return out[..., 0] if c == 1 else out


def extremes_figure(run_dir: Path, ext: Any) -> Path:
    models = [m for m in MODELS if f"{m}_normal_images" in ext]
    plt, fig = _figure("extremes.png")
    for i, m in enumerate(models):
        for j, kind in enumerate(("normal", "anomalous")):
            ax = fig.add_subplot(len(models), 2, 2 * i + j + 1)
            imgs = as_images(ext[f"{m}_{kind}_images"])
            if imgs is None or len(imgs) == 0:
                ax.text(0.5, 0.5, "not images" if imgs is None else "none kept (monitor.extremes=0)", ha="center")
            else:
                ax.imshow(_grid(imgs, cols=8), cmap="gray", interpolation="nearest")
            ax.set(title=f"{MODELS[m]}: most {kind} test images", xticks=[], yticks=[])
            ax.title.set_fontsize(9)
    fig.tight_layout()
    return _save(plt, fig, run_dir / "extremes.png")


TOP_ROWS = 10  # the most anomalous test items report.md lists per model


def _most_anomalous(scores: Any, labelled: bool) -> list[str]:
    """report.md's list of each model's highest-scored test items, by their row in the test set (for
    unlabelled data, the data themselves, in their order): what a user of unlabelled data looks at first."""
    where = "the labelled test set (* an anomaly)" if labelled else "the data, in their order"
    lines = ["## Most anomalous test items", "", f"Each model's {TOP_ROWS} highest scores, by row in {where}:", ""]
    for m, label in MODELS.items():
        if f"{m}_score" not in scores:
            continue
        s = np.asarray(scores[f"{m}_score"])
        top = np.argsort(-s, kind="stable")[:TOP_ROWS]
        star = np.asarray(scores["is_anomaly"]).astype(bool) if labelled else np.zeros(len(s), bool)
        lines.append(f"- {label}: " + ", ".join(f"row {i}{'*' if star[i] else ''} ({s[i]:.4g})" for i in top))
    return lines


def write_report(run_dir: str | Path, projection: str = "tsne") -> Path:
    """Write every figure and ``report.md`` into ``run_dir``; returns the report's path."""
    if projection not in PROJECTIONS:  # before anything is read or written
        raise ReportError(f"projection {projection!r} is unknown; accepted: {', '.join(PROJECTIONS)}")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "does not exist"
        raise ReportError(f"run folder {str(run_dir)!r} {what}")
    for name in (*SIZES, "report.md"):  # every target checked before anything is written
        _target(run_dir, name)
    results = _load(run_dir, "results.json")
    labelled = results.get("normal_classes") is not None
    scores = _load(run_dir, "scores.npz")
    figures = [
        *([roc_figure(run_dir, scores)] if labelled else []),
        scores_figure(run_dir, scores, results),
        training_figure(run_dir, results),
        embeddings_figure(run_dir, _load(run_dir, "embeddings.npz"), projection),
        extremes_figure(run_dir, _load(run_dir, "extremes.npz")),
    ]
    c = results["clustering"]
    lines = [
        f"# Run report: {results['name']}",
        "",
        f"Data: {results['dataset']}, normal classes {results['normal_classes']}; {results['n_train']} training "
        f"points, {results['n_test']} test points of which {results['n_test_anomalies']} anomalies."
        if labelled
        else f"Data: {results['dataset']}, unlabelled: all {results['n_train']} items are normal training data, "
        "scored as the test set (no AUROC without anomalies).",
        f"Clusters ({c['clusterer']}): {len(c['sizes'])} after tidy-up (sizes {c['sizes']}); "
        f"{len(c['sizes_before'])} before, {c['n_noise']} noise points, minimum size {c['min_size']}.",
    ]
    p = results.get("pretrain", {})
    if "eval_loss" in p and p.get("history", {}).get("epochs"):
        lines.append(
            f"Pretraining: loss {p['history']['epochs'][-1]['loss']:.4g} in training (last epoch), "
            f"{p['eval_loss']:.4g} in evaluation mode (the net the spheres are built on)."
        )
    if "agreement" in c:
        lines.append(
            f"Agreement with the true classes: ARI {c['agreement']['ari']:.3f}, NMI {c['agreement']['nmi']:.3f}."
        )
    lines += ["", "| model | spheres | score | test AUROC | test AUPR |", "|---|---|---|---|---|"]
    for m, label in MODELS.items():
        if m in results:
            r = results[m]
            auroc, aupr = ("n/a" if r[k] is None else f"{r[k]:.4f}" for k in ("test_auroc", "test_aupr"))
            lines.append(f"| {label} | {len(r['radii'])} | {r.get('score', '')} | {auroc} | {aupr} |")
    lines += ["", *_most_anomalous(scores, labelled), ""]
    titles = {
        "roc.png": "Test ROC curves",
        "scores.png": "Precision-recall and the test scores",
        "training.png": "Radii and losses during training",
        "embeddings.png": "Embeddings by pseudo-label and by true class",
        "extremes.png": "Extreme test images",
    }
    for f in figures:
        lines += [f"## {titles[f.name]}", "", f"![{titles[f.name]}]({f.name})", ""]
    out = _target(run_dir, "report.md")
    atomic_write(out, lambda p: p.write_text("\n".join(lines)))
    return out


# ------------------------------------------------------------------ the summary printed at the end of a run

SHOWN_CLUSTERS = 12  # the summary shows the class-by-cluster table up to this many clusters


def _sizes(sizes: list[int]) -> str:
    """Cluster sizes for the summary: all of them, or their range and median when there are many."""
    if len(sizes) <= SHOWN_CLUSTERS:
        return str(sizes)
    return f"{min(sizes)} to {max(sizes)} (median {sorted(sizes)[len(sizes) // 2]})"


def summary(results: dict[str, Any]) -> str:
    """The short table printed at the end of a run."""
    c = results["clustering"]
    data = (
        f"data: {results['dataset']}, normal classes {results['normal_classes']}, {results['n_train']} training "
        f"points, {results['n_test']} test points ({results['n_test_anomalies']} anomalies)"
        if results["normal_classes"] is not None
        else f"data: {results['dataset']}, unlabelled: all {results['n_train']} items are normal training data "
        "(scored as the test set; no AUROC without anomalies)"
    )
    if results.get("n_calibration"):
        data += f"; {results['n_calibration']} more held out to set the threshold"
    lines = [
        f"run folder: {results.get('run_dir', '?')}",
        data,
        f"clusters ({c['clusterer']}): {len(c['sizes'])}, sizes {_sizes(c['sizes'])} (before tidy-up: "
        f"{len(c['sizes_before'])} clusters, {c['n_noise']} noise points; minimum size {c['min_size']})",
    ]
    if "agreement" in c:
        a = c["agreement"]
        lines += [f"agreement with the true normal classes: ARI {a['ari']:.3f}, NMI {a['nmi']:.3f}"]
        if len(c["sizes"]) <= SHOWN_CLUSTERS:
            lines += [contingency_markdown(a)]
        else:
            lines += [
                f"(the class-by-cluster table of the {len(c['sizes'])} clusters is in results.json and TensorBoard)"
            ]
    lines += ["", "| model | spheres | radii | score | test AUROC | test AUPR |", "|---|---|---|---|---|---|"]
    for name, label in (("multi", "Multi-Radius Deep SVDD"), ("single", "Deep SVDD (one sphere)")):
        if name in results:
            r = results[name]
            if name == "multi" and not r.get("score", "sphere score").startswith("sphere score"):
                label = "Multi-Radius Deep SVDD, scored without its spheres"
            radii = ", ".join(f"{v:.3f}" for v in r["radii"][:8]) + (" ..." if len(r["radii"]) > 8 else "")
            auroc, aupr = ("n/a" if r[k] is None else f"{r[k]:.4f}" for k in ("test_auroc", "test_aupr"))
            lines.append(f"| {label} | {len(r['radii'])} | {radii} | {r.get('score', '')} | {auroc} | {aupr} |")
    return "\n".join(lines)
