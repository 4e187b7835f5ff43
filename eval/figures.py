"""Figures of explanations as PNG files, in the style of the papers.

- ``masked_grid``: original images in the first row and, in each further row, the same images with
  only the selected pixels kept (unselected pixels set to 0, as the evaluation sees them), one row per
  method: MEED's Figures 4 and 5 (Liang et al., KDD 2020), which compare MEED's and VIBI's selections.
- ``heatmap_overlay``: images and their attribution maps overlaid, with one colour bar in the maps'
  unit (bits per pixel for IBA): IBA's Figure 1 (Schulz et al., ICLR 2020).
- ``map_rows``: images in the first row and one row per named map (own colour scale per row): VP's
  posterior mean, standard deviation and top-k mask side by side.
- ``plot_degradation``: the mean MoRF and LeRF curves of ``eval.degradation`` with the area between
  them shaded: IBA's Figure 7.

Figures are drawn on a bare ``matplotlib.figure.Figure`` rendered by the Agg backend: pyplot's global
state and the user's interactive backend are never touched and nothing is shown. Files are written
atomically (data.io.atomic_write).
"""
from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from eval.imputation import check_mask, zero_impute
from kernels.validation import check_int
from eval.protocol import as_inputs
from data.io import atomic_write


def _images(name: str, images) -> np.ndarray:
    """Images as float (N, H, W, C) with C in {1, 3}; (N, H, W) is read as grey."""
    images = as_inputs(name, images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"{name}: expected images (N, H, W), (N, H, W, 1) or (N, H, W, 3) with N >= 1, "
                         f"got shape {images.shape}")
    return images.astype(np.float32)


def _display_range(images: np.ndarray) -> tuple[float, float]:
    low, high = float(images.min()), float(images.max())
    return low, (high if high > low else low + 1.0)


def _show(ax, image: np.ndarray, low: float, high: float, cmap: str):
    """Draw one (H, W, C) image on a shared intensity range, so masked zeros look alike in every row."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
    else:
        ax.imshow(np.clip((image - low) / (high - low), 0.0, 1.0), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Figure, path, dpi: int) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write(path, buffer.getvalue())


def masked_grid(images, masks, path, *, row_titles: Sequence[str] | None = None,
                col_titles: Sequence[str] | None = None, max_images: int = 8, cmap: str = "gray",
                dpi: int = 100) -> Path:
    """A PNG grid: originals in the first row, then the images masked by each set of masks.

    Args:
        images: (N, H, W[, C]) images, C in {1, 3}.
        masks: binary masks (N, H, W), or a dict method name -> masks for one row per method.
        path: the PNG file to write.
        row_titles: one title per row; default ("original", "selected") for a single mask array and
            ("original", *method names) for a dict.
        col_titles: optional titles above the columns (e.g. the predicted classes).
        max_images: at most this many images (columns), the first ones of the batch.
    Returns the path written.
    """
    images = _images("images", images)
    mask_sets = dict(masks) if isinstance(masks, Mapping) else {"selected": masks}
    if not mask_sets:
        raise ValueError("masks: expected at least one set of masks, got an empty dict")
    checked = [check_mask(images, m, name=f"masks[{name!r}]" if isinstance(masks, Mapping) else "masks")
               for name, m in mask_sets.items()]
    titles = list(row_titles) if row_titles is not None else ["original", *mask_sets]
    if len(titles) != 1 + len(mask_sets):
        raise ValueError(f"row_titles: expected {1 + len(mask_sets)} titles (originals + one per mask set), "
                         f"got {len(titles)}")
    n = min(len(images), check_int("max_images", max_images, minimum=1))
    if col_titles is not None and len(col_titles) < n:
        raise ValueError(f"col_titles: expected at least {n} titles (one per column), got {len(col_titles)}")
    rows = [images[:n]] + [zero_impute(images[:n], m[:n]) for m in checked]
    low, high = _display_range(images[:n])

    fig = Figure(figsize=(1.5 * n + 0.8, 1.5 * len(rows)))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (row, title) in enumerate(zip(rows, titles)):
        for c in range(n):
            _show(axes[r, c], row[c], low, high, cmap)
        axes[r, 0].set_ylabel(str(title))
    if col_titles is not None:
        for c in range(n):
            axes[0, c].set_title(str(col_titles[c]), fontsize=9)
    return _save(fig, path, dpi)


def heatmap_overlay(images, heatmaps, path, *, colorbar_label: str = "bits", cmap: str = "jet",
                    alpha: float = 0.6, max_images: int = 8, titles: Sequence[str] | None = None,
                    vmin: float | None = None, vmax: float | None = None, dpi: int = 100) -> Path:
    """A PNG with the images in the first row, the heatmaps over them in the second, and a colour bar.

    ``heatmaps`` are (N, h, w), stretched over the image when their resolution is coarser. All maps
    share one colour scale (``vmin`` / ``vmax``, default their minimum and maximum), labelled
    ``colorbar_label``, so values are comparable across images. Returns the path written.
    """
    images = _images("images", images)
    heatmaps = as_inputs("heatmaps", heatmaps).astype(np.float32)
    if heatmaps.ndim == 4 and heatmaps.shape[-1] == 1:
        heatmaps = heatmaps[..., 0]
    if heatmaps.ndim != 3 or len(heatmaps) != len(images):
        raise ValueError(f"heatmaps: expected ({len(images)}, h, w) (one map per image), got {heatmaps.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha!r}")
    n = min(len(images), check_int("max_images", max_images, minimum=1))
    if titles is not None and len(titles) < n:
        raise ValueError(f"titles: expected at least {n} titles (one per image), got {len(titles)}")
    low, high = _display_range(images[:n])
    vmin = float(heatmaps[:n].min()) if vmin is None else float(vmin)
    vmax = float(heatmaps[:n].max()) if vmax is None else float(vmax)
    if vmax <= vmin:
        vmax = vmin + 1.0

    height, width = images.shape[1:3]
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    fig = Figure(figsize=(1.8 * n + 1.2, 3.8))
    axes = fig.subplots(2, n, squeeze=False)
    for c in range(n):
        _show(axes[0, c], images[c], low, high, "gray")
        _show(axes[1, c], images[c], low, high, "gray")
        axes[1, c].imshow(heatmaps[c], cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax, extent=extent,
                          interpolation="nearest")
        if titles is not None:
            axes[0, c].set_title(str(titles[c]), fontsize=9)
    # The bar shows the colours at full opacity, so its scale reads like the maps' values.
    mappable = ScalarMappable(norm=Normalize(vmin=vmin, vmax=vmax), cmap=cmap)
    fig.colorbar(mappable, ax=axes.ravel().tolist(), label=colorbar_label, shrink=0.9)
    return _save(fig, path, dpi)


def map_rows(images, maps, path, *, max_images: int = 8, cmap: str = "viridis", dpi: int = 100) -> Path:
    """A PNG: the images in the first row, then one row per entry of ``maps`` (name -> (N, H, W)), each row
    on its own colour scale (its minimum and maximum over the shown images, printed beside the name)."""
    images = _images("images", images)
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps: expected a non-empty dict of name -> maps (N, H, W)")
    n = min(len(images), check_int("max_images", max_images, minimum=1))
    rows = {}
    for name, values in maps.items():
        values = as_inputs(f"maps[{name!r}]", values).astype(np.float32)
        if values.ndim != 3 or len(values) < n:
            raise ValueError(f"maps[{name!r}]: expected ({len(images)}, H, W) maps, got {values.shape}")
        rows[name] = values[:n]
    low, high = _display_range(images[:n])
    fig = Figure(figsize=(1.5 * n + 0.8, 1.5 * (1 + len(rows))))
    axes = fig.subplots(1 + len(rows), n, squeeze=False)
    for c in range(n):
        _show(axes[0, c], images[c], low, high, "gray")
    axes[0, 0].set_ylabel("input")
    for r, (name, values) in enumerate(rows.items(), start=1):
        vmin, vmax = float(values.min()), float(values.max())
        for c in range(n):
            _show(axes[r, c], values[c][..., None], vmin, vmax if vmax > vmin else vmin + 1.0, cmap)
        axes[r, 0].set_ylabel(f"{name}\n[{vmin:.2g}, {vmax:.2g}]", fontsize=8)
    return _save(fig, path, dpi)


def plot_degradation(result, path, *, title: str | None = None, dpi: int = 100) -> Path:
    """A PNG of the mean MoRF and LeRF curves of a ``DegradationResult``, the area between them shaded.

    x axis: share of removed tiles; y axis: the normalised target score (IBA eq. 9). The legend gives
    the area (IBA Table 1's score). Returns the path written.
    """
    for field in ("fractions", "morf", "lerf", "area"):
        if not hasattr(result, field):
            raise TypeError(f"result: expected a DegradationResult (with {field!r}), got {type(result).__name__}")
    fractions, morf, lerf = (np.asarray(getattr(result, f), np.float64) for f in ("fractions", "morf", "lerf"))
    fig = Figure(figsize=(4.5, 3.5))
    ax = fig.subplots()
    ax.fill_between(fractions, morf, lerf, color="0.85", label=f"area {result.area:.3f}")
    ax.plot(fractions, morf, color="tab:red", label="MoRF")
    ax.plot(fractions, lerf, color="tab:blue", label="LeRF")
    ax.set_xlabel("share of tiles removed")
    ax.set_ylabel("normalised target score")
    ax.set_xlim(0.0, 1.0)
    ax.legend(loc="best", fontsize=8)
    if title is not None:
        ax.set_title(str(title))
    return _save(fig, path, dpi)
