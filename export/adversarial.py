"""Adversarial examples against the sample classifier: FGSM and L2-bounded PGD on real test images.

Goodfellow et al. 2014 (FGSM: one step along the sign of the loss gradient) and Madry et al. 2017
(PGD: gradient steps projected back onto the L2 ball of radius eps and onto the valid pixel box).
Distances are L2 norms in pixel units scaled to [0, 1], over the whole 32x32 input (D = 1024); an
L2 norm of 1.0 is, e.g., every pixel moved by 1/32 of full range, or 16 pixels by a quarter.

FGSM is an L-infinity attack; to place it on the same axis it steps eps / sqrt(D) per pixel, whose
L2 norm is eps before clipping to [0, 1] (the table reports the norm measured after clipping).
The fooling rate counts images the classifier got right that the attack makes it get wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .models import Classifier

PGD_STEPS = 20


@dataclass(frozen=True)
class AttackRow:
    attack: str  # "FGSM" | "PGD-L2"
    eps: float  # L2 budget in [0, 1] pixel units
    mean_l2: float  # measured mean L2 norm of the perturbations (after clipping)
    fooling_rate: float  # share of correctly classified images now misclassified (float images)
    fooling_rate_uint8: float  # the same after rounding to uint8, through the exported ONNX classifier


def _logits(model: Classifier, x01: torch.Tensor) -> torch.Tensor:
    return model.forward_float(x01 * 2.0 - 1.0)[0]  # [0, 1] -> the classifier's [-1, 1]


def predict_logits(model: Classifier, images_u8: torch.Tensor) -> torch.Tensor:
    """Logits (N, K) of uint8 images (N, C, S, S)."""
    return _logits(model, images_u8.float() / 255.0)


def _l2(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12)  # (N,)


def fgsm(model: Classifier, x01: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of eps / sqrt(D) per pixel (L2 norm eps before clipping)."""
    x = x01.clone().requires_grad_(True)
    nn.functional.cross_entropy(_logits(model, x), y).backward()
    step = eps / np.sqrt(x01[0].numel())
    return (x01 + step * x.grad.sign()).clamp(0, 1).detach()


def pgd_l2(model: Classifier, x01: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = PGD_STEPS) -> torch.Tensor:
    """Untargeted PGD in the L2 ball of radius eps: normalised gradient steps of 2.5 eps / steps
    (Madry et al.'s choice: the ball can be crossed), each projected onto the ball and onto [0, 1]."""
    alpha = 2.5 * eps / steps
    delta = torch.zeros_like(x01)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = nn.functional.cross_entropy(_logits(model, x01 + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta + alpha * grad / _l2(grad)[:, None, None, None]
            delta = delta * (eps / _l2(delta)).clamp(max=1.0)[:, None, None, None]  # onto the L2 ball
            delta = (x01 + delta).clamp(0, 1) - x01  # onto the pixel box
    return (x01 + delta).detach()


ATTACKS = {"FGSM": fgsm, "PGD-L2": pgd_l2}


def _to_uint8(x01: torch.Tensor) -> np.ndarray:
    return (x01.permute(0, 2, 3, 1) * 255.0).round().clamp(0, 255).to(torch.uint8).numpy()  # (N, S, S, C)


def fooling_table(model: Classifier, onnx_clf, images_u8: torch.Tensor, labels: torch.Tensor,
                  eps_values: tuple[float, ...]) -> tuple[list[AttackRow], float]:
    """Fooling rate against eps for each attack; also returns the clean accuracy.

    ``images_u8`` (N, C, S, S) uint8 real images; ``onnx_clf`` the exported classifier (ganrt), which
    judges the uint8-rounded adversarial images as a deployed model would see them.
    """
    model.eval()
    x01 = images_u8.float() / 255.0
    with torch.no_grad():
        correct = _logits(model, x01).argmax(1) == labels
    x, y = x01[correct], labels[correct]  # attack only what the classifier gets right
    rows = []
    for name, attack in ATTACKS.items():
        for eps in eps_values:
            adv = attack(model, x, y, eps)
            with torch.no_grad():
                fooled = (_logits(model, adv).argmax(1) != y).float().mean().item()
            pred_u8, _ = onnx_clf.predict(_to_uint8(adv))
            rows.append(AttackRow(name, eps, float(_l2(adv - x).mean()), fooled, float((pred_u8 != y.numpy()).mean())))
    return rows, float(correct.float().mean())


def markdown_table(rows: list[AttackRow], clean_accuracy: float, n: int) -> str:
    lines = [f"Fooling rate on the {int(round(clean_accuracy * n))} of {n} real test images that the classifier gets right "
             f"(clean accuracy {clean_accuracy:.2%}); L2 in [0, 1] pixel units, D = 1024.", "",
             "| attack | L2 budget | mean L2 | fooling rate (float) | fooling rate (uint8, ONNX) |", "|---|---|---|---|---|"]
    lines += [f"| {r.attack} | {r.eps:g} | {r.mean_l2:.3f} | {r.fooling_rate:.1%} | {r.fooling_rate_uint8:.1%} |" for r in rows]
    return "\n".join(lines) + "\n"


def figure(model: Classifier, images_u8: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...], eps: float,
           *, scale: int = 4, amplify: float = 10.0) -> np.ndarray:
    """Rows: original | perturbation (x amplify, grey = 0) | PGD-L2 adversarial, each captioned
    with the predicted class and its confidence (red: not the true class). Returns (H, W, 3) uint8."""
    from PIL import Image, ImageDraw

    model.eval()
    x = images_u8.float() / 255.0
    adv = pgd_l2(model, x, labels, eps)
    with torch.no_grad():
        p0, p1 = (torch.softmax(_logits(model, v), 1) for v in (x, adv))
    pert = ((adv - x) * amplify + 0.5).clamp(0, 1)
    side, cap = x.shape[-1] * scale, 24
    cols = 3
    canvas = Image.new("RGB", (cols * (side + 8) + 8, len(x) * (side + cap + 8) + 8 + 16), "white")
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(("original", f"perturbation x{amplify:g}", f"PGD-L2 adversarial (eps {eps:g})")):
        draw.text((8 + c * (side + 8), 4), title, fill="black")
    for r in range(len(x)):
        y0 = 20 + r * (side + cap + 8)
        tiles = [(x[r], p0[r]), (pert[r], None), (adv[r], p1[r])]
        for c, (img, probs) in enumerate(tiles):
            arr = (img[0].numpy() * 255).round().astype(np.uint8)
            tile = Image.fromarray(arr).resize((side, side), Image.NEAREST).convert("RGB")
            x0 = 8 + c * (side + 8)
            canvas.paste(tile, (x0, y0))
            if probs is not None:
                k = int(probs.argmax())
                colour = "black" if k == int(labels[r]) else "red"
                draw.text((x0, y0 + side + 2), f"{class_names[k]} {float(probs[k]):.0%}", fill=colour)
            else:
                draw.text((x0, y0 + side + 2), f"L2 {float(_l2(adv[r:r + 1] - x[r:r + 1])):.2f}", fill="black")
    return np.asarray(canvas)
