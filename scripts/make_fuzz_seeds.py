"""Seeds for the fuzz targets (fuzz/seeds/<target>/) that are binary files: a 16-bit depth PNG in millimetres, a
32-bit float depth TIFF in metres, and an RGB-D folder intrinsics.json. The other seeds are small text files
committed as they are. tests/hostile_parsers.rs mutates the same seeds. The Parquet seed is a one-image shard that
svlm itself writes:

    python3 scripts/make_fuzz_seeds.py
    svlm synth --out /tmp/seed --scenes 1 --qa-per-image 2 --image-size 16x12 --objects 2-2 \
        --min-visible-pixels 4 --short-answers --plain-phrasing --format parquet --quiet
    cp /tmp/seed/shard-00000-of-00001.parquet fuzz/seeds/parquet_records/shard.parquet
"""

import json
import pathlib

import numpy as np
from PIL import Image

root = pathlib.Path(__file__).resolve().parent.parent / "fuzz" / "seeds"

depth_mm = np.array([[0, 1200, 65535], [800, 1000, 4500]], dtype=np.uint16)
(root / "depth_png").mkdir(parents=True, exist_ok=True)
Image.fromarray(depth_mm).save(root / "depth_png" / "depth.png")

depth_m = np.array([[0.0, 1.2, np.nan], [0.8, 1.0, 4.5]], dtype=np.float32)
(root / "depth_tiff").mkdir(parents=True, exist_ok=True)
Image.fromarray(depth_m, mode="F").save(root / "depth_tiff" / "depth.tiff")

(root / "intrinsics").mkdir(parents=True, exist_ok=True)
(root / "intrinsics" / "intrinsics.json").write_text(
    json.dumps({"fx": 500.0, "fy": 500.0, "cx": 1.0, "cy": 0.5, "width": 3, "height": 2}) + "\n"
)
