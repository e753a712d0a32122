#!/usr/bin/python3
# Writes the two input images of docs/STYLE_TRANSFER.md's example, drawn procedurally
# (seeded) so that the example owes nothing to anyone's photo or painting:
#   docs/style/content.png   a landscape "photo": sky, sun, hills, a lake, a house, a tree
#   docs/style/style.png     a "painting": swirling brush strokes in a blue-yellow palette,
#                            each stroke a short curve along a vortex flow field
# Both 192x192. Regenerate (from the repository root, Debian's python3-numpy and
# python3-pil):
#     /usr/bin/python3 scripts/make_style_example_images.py
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 192
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "style")


def content(rng):
    s = SIZE
    y, x = np.mgrid[0:s, 0:s].astype(np.float64) / s
    img = np.zeros((s, s, 3))
    # Sky: blue at the top to pale at the horizon.
    sky = np.stack([0.35 + 0.5 * y, 0.55 + 0.35 * y, 0.95 - 0.05 * y], -1)
    img[:] = sky
    im = Image.fromarray((img * 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.ellipse([140, 22, 172, 54], fill=(255, 236, 150))  # sun
    # Hills: two layers of smooth ridges.
    for base, amp, col, phase in [(0.50, 0.07, (70, 120, 70), 0.3), (0.60, 0.05, (50, 100, 45), 1.7)]:
        pts = [(i, int(s * (base + amp * np.sin(6.0 * i / s + phase) + 0.02 * np.sin(17.0 * i / s)))) for i in range(s)]
        d.polygon(pts + [(s - 1, s - 1), (0, s - 1)], fill=col)
    # Lake with the sky's colour, darker.
    d.ellipse([20, 130, 120, 170], fill=(70, 110, 160))
    # House: walls, roof, door, window.
    d.rectangle([118, 112, 158, 142], fill=(200, 170, 130))
    d.polygon([(112, 114), (138, 92), (164, 114)], fill=(150, 50, 40))
    d.rectangle([132, 124, 142, 142], fill=(90, 60, 40))
    d.rectangle([146, 118, 154, 126], fill=(230, 230, 170))
    # Tree: trunk and a round crown.
    d.rectangle([52, 96, 58, 132], fill=(90, 60, 35))
    d.ellipse([34, 66, 76, 106], fill=(40, 110, 50))
    im = im.filter(ImageFilter.GaussianBlur(0.7))
    # Mild sensor noise so it reads as a photo.
    a = np.asarray(im).astype(np.float64) + rng.normal(0, 4, (s, s, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def style(rng):
    s = SIZE
    im = Image.new("RGB", (s, s), (25, 40, 90))
    d = ImageDraw.Draw(im)
    palette = [(30, 60, 140), (50, 90, 180), (90, 140, 210), (230, 200, 60), (245, 225, 120), (20, 35, 80),
               (200, 120, 40)]
    centres = rng.uniform(0, s, (5, 2))
    spins = rng.choice([-1.0, 1.0], 5)

    def flow(px, py):
        vx = vy = 0.0
        for (cx, cy), sp in zip(centres, spins):
            dx, dy = px - cx, py - cy
            r2 = dx * dx + dy * dy + 200.0
            vx += sp * -dy / r2 * 400
            vy += sp * dx / r2 * 400
        n = np.hypot(vx, vy) + 1e-9
        return vx / n, vy / n

    for _ in range(2600):
        px, py = rng.uniform(0, s, 2)
        # Yellow strokes near the vortex centres, blues elsewhere.
        near = min(np.hypot(px - cx, py - cy) for cx, cy in centres)
        col = palette[rng.integers(3, 5)] if near < 18 and rng.random() < 0.8 else palette[rng.integers(0, 7)]
        col = tuple(int(np.clip(c + rng.normal(0, 12), 0, 255)) for c in col)
        pts = [(px, py)]
        for _ in range(int(rng.integers(4, 9))):
            vx, vy = flow(px, py)
            px, py = px + 2.2 * vx, py + 2.2 * vy
            pts.append((px, py))
        d.line(pts, fill=col, width=int(rng.integers(2, 4)))
    return im.filter(ImageFilter.SMOOTH)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(7)
    content(rng).save(os.path.join(OUT, "content.png"), optimize=True)
    style(rng).save(os.path.join(OUT, "style.png"), optimize=True)
    for n in ("content.png", "style.png"):
        p = os.path.join(OUT, n)
        print("wrote", os.path.normpath(p), os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main()
