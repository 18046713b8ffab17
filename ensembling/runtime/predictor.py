"""The offline predictor of an exported ensemble: full-size masks from its members, folds and TTA.

Each member sees the image at its own training size; every TTA view of a batch goes through a model
in one forward pass (bf16 autocast on a GPU); its models' TTA-averaged probabilities are resized back
to the image's own size, blended by the members' weights, then post-processed per class. Weights are
checked (safetensors header and size) before they are loaded, so a truncated file is one line naming
it. Needs torch, smp, numpy and OpenCV, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from core.contract import ENSEMBLE_JSON
from core.postprocess import GATE_BLEND_MAX
from core.postprocess import apply_postprocessing as apply_steps
from core.postprocess.apply import steps_of
from core.preprocess import resize_image, resize_probs, to_tensor
from core.tta import views
from ensembling.runtime.class_predictor import ClassPredictor
from ensembling.runtime.decide import skipped
from ensembling.runtime.manifest import Manifest, read_manifest
from ensembling.runtime.members import Member, load_member


class Predictor:
    """Load an exported ensemble once, then predict masks for batches of RGB images."""

    def __init__(self, folder: str | Path, device: str | None = None, manifest: Manifest | None = None) -> None:
        self.folder = Path(folder)
        self.manifest = manifest or read_manifest(self.folder / ENSEMBLE_JSON)  # predict has read it already
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.num_classes = self.manifest.num_classes
        self.class_ids: list[int] = list(self.manifest.class_ids)
        self.members = [load_member(self.folder, m, self.num_classes, self.device) for m in self.manifest.members]
        # the classifier gate (ensembling.gate_study): run before the masks; images it judges clean are not segmented
        section = self.manifest.gate
        self.gate = None if section is None else ClassPredictor(self.folder, section, self.device, self.bf16)
        post = self.manifest.postprocessing  # read when masks are post-processed; checked there
        source = post.get("gate_source", GATE_BLEND_MAX)
        if self.gate is None and source != GATE_BLEND_MAX:
            raise ValueError(f"{self.folder}: the gate was tuned on {source}, but the ensemble carries no classifier; select and export again")
        self.gates = [0.0] * self.num_classes
        if self.gate is not None:
            steps, values = steps_of(post, self.num_classes)
            self.gates = [v.get("gate", 0.0) if "gate" in steps else 0.0 for v in values]
        self.segmented = 0  # images segmented so far (the rest were skipped by the gate)

    @torch.no_grad()
    def _member_probs(self, member: Member, batch: torch.Tensor) -> torch.Tensor:
        """Mean probability over the member's models and TTA views; all views of the batch in one pass."""
        policy = views(member.tta)
        stacked = torch.cat([forward(batch) for forward, _ in policy])
        total = None
        for model in member.models:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = model(stacked)
            chunks = torch.sigmoid(logits.float()).chunk(len(policy))
            probs = sum(inverse(chunk) for (_, inverse), chunk in zip(policy, chunks, strict=True))
            total = probs if total is None else total + probs
        return total / (len(policy) * len(member.models))

    @torch.no_grad()
    def probabilities(self, images: list[np.ndarray]) -> np.ndarray:
        """Blended probabilities (N, C, H, W) for RGB uint8 images (H, W, 3) of one size."""
        size = images[0].shape[:2]
        total = torch.zeros((len(images), self.num_classes, *size), device=self.device)
        for member in self.members:
            batch = to_tensor(np.stack([resize_image(image, member.input_size) for image in images])).to(self.device)
            total += member.weight * resize_probs(self._member_probs(member, batch), size)
        return total.cpu().numpy()

    def postprocess(self, probs: np.ndarray, image_probs: np.ndarray | None = None) -> np.ndarray:
        """(C, H, W) probabilities of one image to its 0/1 masks, as tuned on OOF (``image_probs``: the gate's (C,))."""
        return apply_steps(probs, self.manifest.postprocessing, image_probs)

    def masks(self, images: list[np.ndarray]) -> Iterator[np.ndarray]:
        """Post-processed 0/1 masks (C, H, W) per image, at each image's own size.

        With a classifier gate, the classifier runs first; an image whose every class is under its gate
        gets empty masks without a segmentation pass (the gate would wipe each class anyway)."""
        if self.gate is None:
            for probs in self.probabilities(images):
                yield self.postprocess(probs)
            return
        image_probs = self.gate.probabilities(images)
        clean = skipped(image_probs, self.gates)
        kept = [i for i in range(len(images)) if not clean[i]]
        self.segmented += len(kept)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i in kept:
            by_size.setdefault(images[i].shape[:2], []).append(i)
        masks: dict[int, np.ndarray] = {}
        for group in by_size.values():
            for i, probs in zip(group, self.probabilities([images[j] for j in group]), strict=True):
                masks[i] = self.postprocess(probs, image_probs[i])
        for i, image in enumerate(images):
            yield masks[i] if i in masks else np.zeros((self.num_classes, *image.shape[:2]), np.uint8)
