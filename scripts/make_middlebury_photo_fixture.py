"""Middlebury 2014 Motorcycle as an RGB-D folder, for the photo-vs-RGB-D test of svlm-perception
(crates/svlm-perception/tests/photo_pipeline.rs).

Source: scikit-image's `data/motorcycle_left.png` (741x500) and `data/motorcycle_disp.npz` (ground-truth disparity,
`arr_0`, inf = unknown). The npz carries no calibration; it comes from the Middlebury calib.txt of this image size
(the same constants as scripts/make_geometry_fixtures.py): f = 994.978 px, baseline 0.193001 m, doffs 31.086 px,
cx = 311.193, cy = 254.877. Metric z-depth = f * B / (disp + doffs).

Every second pixel in both directions is kept (371x250; fx = fy = f/2, cx/2, cy/2). Written, in the RGB-D folder
layout of docs/ARCHITECTURE.md:

  crates/svlm-perception/tests/fixtures/middlebury/motorcycle.png            RGB
  crates/svlm-perception/tests/fixtures/middlebury/motorcycle.depth.png      16-bit millimetres, 0 = unknown
  crates/svlm-perception/tests/fixtures/middlebury/motorcycle.objects.json   named boxes (COCO [x, y, w, h])
  crates/svlm-perception/tests/fixtures/middlebury/intrinsics.json           the calibration above

The boxes are drawn by hand on the subsampled image (this script is their record): the two wheels, the red bin
and the cardboard box on the shelf at the right, and the wooden bench at the left.

Needs numpy, scikit-image, Pillow. Run from the repo root: python3 scripts/make_middlebury_photo_fixture.py
"""
import json
import os
import tempfile

import numpy as np
import skimage
from PIL import Image

FOCAL, BASELINE_M, DOFFS, CX, CY = 994.978, 0.193001, 31.086, 311.193, 254.877
SUBSAMPLE = 2
OUT = "crates/svlm-perception/tests/fixtures/middlebury"
BOXES = [  # name, [x, y, w, h] on the 371x250 image
    ("front wheel", [256, 141, 84, 85]),
    ("rear wheel", [59, 116, 84, 86]),
    ("red bin", [262, 92, 44, 33]),
    ("cardboard box", [306, 93, 34, 44]),
    ("wooden bench", [22, 55, 60, 60]),
]


def write_atomic(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    data_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    rgb = np.asarray(Image.open(os.path.join(data_dir, "motorcycle_left.png")).convert("RGB"))
    disp = np.load(os.path.join(data_dir, "motorcycle_disp.npz"))["arr_0"].astype(np.float64)
    if rgb.shape[:2] != disp.shape:
        raise SystemExit(f"image {rgb.shape} and disparity {disp.shape} differ")
    valid = np.isfinite(disp) & (disp > 0)
    depth = np.zeros_like(disp)
    depth[valid] = FOCAL * BASELINE_M / (disp[valid] + DOFFS)
    rgb = rgb[::SUBSAMPLE, ::SUBSAMPLE]
    depth_mm = np.round(depth[::SUBSAMPLE, ::SUBSAMPLE] * 1000.0).astype(np.uint16)
    h, w = depth_mm.shape
    os.makedirs(OUT, exist_ok=True)
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    write_atomic(os.path.join(OUT, "motorcycle.png"), buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(depth_mm).save(buf, format="PNG")
    write_atomic(os.path.join(OUT, "motorcycle.depth.png"), buf.getvalue())
    objects = {"objects": [{"id": i + 1, "name": n, "bbox": b} for i, (n, b) in enumerate(BOXES)]}
    write_atomic(os.path.join(OUT, "motorcycle.objects.json"), json.dumps(objects, indent=1).encode())
    k = {"fx": FOCAL / SUBSAMPLE, "fy": FOCAL / SUBSAMPLE, "cx": CX / SUBSAMPLE, "cy": CY / SUBSAMPLE,
         "width": w, "height": h}
    write_atomic(os.path.join(OUT, "intrinsics.json"), json.dumps(k, indent=1).encode())
    print(f"{w}x{h}, valid depth {np.mean(depth_mm > 0):.3f}, depth {depth_mm[depth_mm > 0].min()}-"
          f"{depth_mm.max()} mm -> {OUT}")


if __name__ == "__main__":
    main()
