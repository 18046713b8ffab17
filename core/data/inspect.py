"""Look at a data set: a table of counts and sizes, and a PNG grid of images with their decoded masks.

``python -m trainables.inspect data=severstal data.root=DIR [out=data.png] [images=12] [seed=0]``

The grid draws each class's mask edge in its own colour over the image (a filled tint inside), with
a legend and the image id on each tile, so a wrong RLE order or an off-by-one shows at a glance.
:func:`data_picture` is what the search logs to MLflow when a study starts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from core.atomic import write_with
from core.data.formats import SegmentationData
from core.png_mark import mark_png

# class colours (RGB), distinct on grey steel and on photos
COLOURS = [(255, 60, 60), (60, 200, 255), (255, 220, 0), (60, 255, 60), (255, 0, 255), (255, 140, 0), (0, 120, 255), (160, 255, 200)]
TILE_WIDTH = 640


def colour(c: int) -> tuple[int, int, int]:
    return COLOURS[c % len(COLOURS)]


def summary(data: SegmentationData, sample: int = 0) -> dict:
    """Counts per class, empty images, mask area quantiles per class (fraction of the image), sizes."""
    labels = data.labels()
    sizes = Counter(data.image_shape(i) for i in data.image_ids)
    out = {
        "images": len(data),
        "classes": data.num_classes,
        "per_class": labels.sum(axis=0).tolist(),
        "empty": int((labels.sum(axis=1) == 0).sum()) if data.kind == "segmentation" else 0,
        "sizes": {f"{w}x{h}": n for (h, w), n in sizes.most_common()},
        "areas": {},
    }
    if data.kind == "segmentation":
        ids = data.image_ids if not sample or sample >= len(data) else data.image_ids[:: max(1, len(data) // sample)]
        areas: list[list[float]] = [[] for _ in range(data.num_classes)]
        for image_id in ids:
            masks = data.masks(image_id)
            for c, mask in enumerate(masks):
                if mask.any():
                    areas[c].append(float(mask.mean()))
        out["areas"] = {c: np.quantile(a, [0.05, 0.5, 0.95]).tolist() if a else [] for c, a in enumerate(areas)}
    return out


def format_table(data: SegmentationData, info: dict) -> str:
    names = list(data.class_names) or [str(c + 1) for c in range(data.num_classes)]
    lines = [
        f"{data.format or 'data'}: {info['images']} images, {info['classes']} classes, "
        f"{info['empty']} without any mask" if data.kind == "segmentation" else f"{data.format}: {info['images']} images, {info['classes']} classes",
        f"image sizes (w x h): {', '.join(f'{k} ({n})' for k, n in info['sizes'].items())}",
        f"{'class':<16} {'images':>7}  {'area q05':>9} {'median':>8} {'q95':>8}",
    ]
    for c, name in enumerate(names):
        q = info["areas"].get(c) or []
        area = "  ".join(f"{v:8.2%}" for v in q) if q else ("   (none)" if data.kind == "segmentation" else "")
        lines.append(f"{name:<16} {info['per_class'][c]:>7}  {area}")
    return "\n".join(lines)


def draw_tile(image: np.ndarray, masks: np.ndarray | None, title: str, width: int = TILE_WIDTH) -> np.ndarray:
    """One tile: the image scaled to ``width``, each mask's edge in its class colour (1-px lines at full
    size, drawn before scaling where the image is small), a light fill, and the title on top."""
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    tile = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32)
    if masks is not None:
        for c, mask in enumerate(masks):
            if not mask.any():
                continue
            big = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
            tile[big] = 0.75 * tile[big] + 0.25 * np.array(colour(c), np.float32)
            contours, _ = cv2.findContours(big.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(tile, contours, -1, colour(c), 1)
    tile = np.clip(tile, 0, 255).astype(np.uint8)
    banner = np.full((22, width, 3), 30, np.uint8)
    cv2.putText(banner, title, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([banner, tile], axis=0)


def legend(data: SegmentationData, width: int) -> np.ndarray:
    names = list(data.class_names) or [f"class {c + 1}" for c in range(data.num_classes)]
    bar = np.full((28, width, 3), 255, np.uint8)
    drawn = data.kind == "segmentation" or bool(data.rles or data.mask_files)  # masks drawn: colour swatches
    x = 8
    for c, name in enumerate(names):
        if drawn:
            cv2.rectangle(bar, (x, 8), (x + 14, 22), colour(c), -1)
            x += 20
        cv2.putText(bar, name if drawn else f"{c}: {name}", (x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += 12 + 9 * len(name) + (30 if not drawn else 0)
    return bar


def pick(data: SegmentationData, n: int, seed: int = 0) -> list[str]:
    """Images with masks first (one per class where possible), then others, at most n."""
    rng = np.random.default_rng(seed)
    labels = data.labels()
    chosen: list[int] = []
    for c in range(data.num_classes):
        having = [i for i in np.flatnonzero(labels[:, c]) if i not in chosen]
        if having and len(chosen) < n:
            chosen.append(int(rng.choice(having)))
    rest = [i for i in rng.permutation(len(data)).tolist() if i not in chosen]
    chosen += rest[: n - len(chosen)]
    return [data.image_ids[i] for i in chosen]


def data_picture(data: SegmentationData, n: int = 12, seed: int = 0, ids: list[str] | None = None) -> np.ndarray:
    """The grid (RGB uint8): ``n`` tiles, two columns for wide images (Severstal), four for others."""
    ids = ids or pick(data, n, seed)
    first = data.image_shape(ids[0])
    columns = 2 if first[1] >= 2 * first[0] else 4
    width = TILE_WIDTH if columns == 2 else TILE_WIDTH // 2
    tiles = []
    has_masks = bool(data.rles or data.mask_files)
    labels = data.labels() if data.kind == "classification" else None
    row = {image_id: i for i, image_id in enumerate(data.image_ids)}
    for image_id in ids:
        image = data.read_image(image_id)
        if labels is not None:  # one class, or several (multi-label; a presence study still draws its masks)
            names = [data.class_names[c] for c in np.flatnonzero(labels[row[image_id]])] or ["none"]
            masks = data.masks(image_id, image.shape[:2]) if has_masks else None
            tiles.append(draw_tile(image, masks, f"{image_id}  [{' '.join(names)}]", width))
        else:
            tiles.append(draw_tile(image, data.masks(image_id, image.shape[:2]), image_id, width))
    tile_h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, tile_h - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles]
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    grid = np.concatenate(rows, axis=0)
    return np.concatenate([legend(data, grid.shape[1]), grid], axis=0)


def write_picture(path: Path, picture: np.ndarray, written_by: str = "trainables.inspect") -> None:
    """The picture as a PNG carrying our mark (``core.png_mark``), so a later run may replace it."""
    path = Path(path)

    def write(tmp: Path) -> None:
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"{path}: could not encode the PNG")
        tmp.write_bytes(mark_png(encoded.tobytes(), written_by))

    write_with(path, write)


def write_data_picture(study_root: Path, data: SegmentationData | None = None) -> Path:
    """Write the study's data picture (contract name); the search logs it to the study's MLflow run."""
    from core.contract import StudyFolder
    from core.data.study import open_study

    data = data if data is not None else open_study(study_root).data
    path = StudyFolder(Path(study_root)).data_picture
    write_picture(path, data_picture(data))
    return path
