#!/usr/bin/python3
"""Writes the JPEG fixtures of tests/core/test_image.cpp with Pillow (Debian's python3-pil).

progressive.jpg is a progressive RGB JPEG, and progressive_decoded.png holds Pillow's
decoding of it (the same libjpeg-turbo decoder, so dtrain's must equal it exactly).
cmyk.jpg is the same picture stored as CMYK (Pillow writes Adobe's inverted CMYK);
source.png is the picture itself, which a CMYK decode must match within the codec's error.

Usage: /usr/bin/python3 scripts/make_image_fixtures.py tests/fixtures/images
"""
import sys

from PIL import Image


def picture(w=40, h=24):
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            # smooth ramps, so that JPEG's error stays small
            px[x, y] = (40 + 4 * x, 30 + 6 * y, 200 - 2 * x - 3 * y)
    return im


def main(out):
    im = picture()
    im.save(f"{out}/source.png")
    im.save(f"{out}/progressive.jpg", quality=90, progressive=True)
    Image.open(f"{out}/progressive.jpg").convert("RGB").save(f"{out}/progressive_decoded.png")
    im.convert("CMYK").save(f"{out}/cmyk.jpg", quality=95)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/images")
