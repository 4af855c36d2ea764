"""Dataset fixtures written in the real Hub formats, for reading through `datasets` offline.

- Parquet the way `push_to_hub` writes it: image columns are structs {"bytes", "path"} and the
  schema metadata "huggingface" holds the `datasets` features (that is what makes `datasets` see
  an Image feature rather than a plain struct).
- Webdataset tars the way clip-benchmark writes them: `test/<n>.tar`, samples keyed
  "s%07d" % global index, `<key>.jpg|webp` + `<key>.txt` (captions joined by newlines) or
  `<key>.cls` (the label), and `test/nshards.txt`.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def pattern(size=(16, 12), seed=0, mode="RGB") -> Image.Image:
    """A small image with distinct pixels (so equality checks mean something)."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "LA": 2}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    if mode == "RGBA":
        pixels[..., 3] = np.where(np.arange(size[0]) % 2 == 0, 255, 0)[None, :]
    return Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode)


def image_cell(image: Image.Image, name: str) -> dict:
    return {"bytes": encode(image, "PNG"), "path": name}


def write_parquet(path: Path, rows: dict, features) -> Path:
    """A parquet file as the Hub stores it; `features` is a `datasets.Features`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = features.arrow_schema.with_metadata(
        {"huggingface": json.dumps({"info": {"features": features.to_dict()}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows, schema=schema), path)
    return path


WINOGROUND_CAPTIONS = [
    ("an old person kisses a young person", "a young person kisses an old person"),
    ("the dog chases the cat", "the cat chases the dog"),
    ("there is a mug in some grass", "there is some grass in a mug"),
    ("a red cube left of a blue ball", "a blue ball left of a red cube"),
    ("the light is on and the door is closed", "the light is closed and the door is on"),
    ("a tall tree near a short house", "a short tree near a tall house"),
]


def write_winoground(root: Path, n: int = 6, rgba_index: int = 1) -> list[dict]:
    """`data/test-00000-of-00001.parquet` with n Winoground rows; row `rgba_index`'s image_0 is
    RGBA. Returns the rows with PIL images (what the adapter should give back)."""
    import datasets

    rows = []
    for i in range(n):
        mode = "RGBA" if i == rgba_index else "RGB"
        c0, c1 = WINOGROUND_CAPTIONS[i % len(WINOGROUND_CAPTIONS)]
        rows.append({"id": i, "image_0": pattern(seed=2 * i, mode=mode),
                     "image_1": pattern(seed=2 * i + 1), "caption_0": c0, "caption_1": c1,
                     "tag": f"tag{i % 3}", "secondary_tag": "Symbolic" if i % 2 else "",
                     "num_main_preds": 1 + i % 2, "collapsed_tag": ["Object", "Relation"][i % 2]})
    features = datasets.Features({
        "id": datasets.Value("int32"), "image_0": datasets.Image(), "image_1": datasets.Image(),
        "caption_0": datasets.Value("string"), "caption_1": datasets.Value("string"),
        "tag": datasets.Value("string"), "secondary_tag": datasets.Value("string"),
        "num_main_preds": datasets.Value("int32"), "collapsed_tag": datasets.Value("string")})
    columns = {k: [r[k] for r in rows] for k in features}
    for k in ("image_0", "image_1"):
        columns[k] = [image_cell(im, f"ex{i}_{k}.png") for i, im in enumerate(columns[k])]
    write_parquet(root / "data" / "test-00000-of-00001.parquet", columns, features)
    return rows


A_PREPOSITIONS = ("on", "under", "to the left of", "to the right of")
B_PREPOSITIONS = ("in front of", "behind", "to the left of", "to the right of")
OBJECTS = [("mug", "plate"), ("book", "box"), ("dog", "chair")]


def whatsup_rows(kind: str, n: int, seed: int = 0) -> list[dict]:
    """Rows of a What'sUp split: "A"/"B" (4 options) or "two" (2 options); correct first."""
    rows = []
    for i in range(n):
        a, b = OBJECTS[i % len(OBJECTS)]
        if kind == "two":
            options = [f"A {a} to the left of a {b}", f"A {a} to the right of a {b}"]
        else:
            preps = A_PREPOSITIONS if kind == "A" else B_PREPOSITIONS
            options = [f"A {a} {p} a {b}" for p in preps]
            k = i % 4
            options = [options[k]] + options[:k] + options[k + 1:]  # correct first
        gray = i % 2 == 1  # What'sUp and COCO have grayscale images
        image = pattern((20, 14), seed=100 * seed + i, mode="L" if gray else "RGB")
        rows.append({"image": image, "captions": options})
    return rows


def write_whatsup(root: Path, splits: dict[str, list[dict]]) -> None:
    """`data/<split>-00000-of-00001.parquet` per split, with What'sUp's columns."""
    import datasets

    features = datasets.Features({"image_options": datasets.List(datasets.Image()),
                                  "caption_options": datasets.List(datasets.Value("string"))})
    for split, rows in splits.items():
        columns = {"image_options": [[image_cell(r["image"], f"{split}_{i}.png")]
                                     for i, r in enumerate(rows)],
                   "caption_options": [r["captions"] for r in rows]}
        write_parquet(root / "data" / f"{split}-00000-of-00001.parquet", columns, features)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_tars(root: Path, samples: list[dict], per_shard: int, key_format: str = "s%07d",
               split: str = "test") -> list[Path]:
    """Webdataset shards `<split>/<n>.tar`; each sample is {field: bytes}, keyed by its global
    index. Also writes `nshards.txt` as clip-benchmark does."""
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for n, start in enumerate(range(0, len(samples), per_shard)):
        path = folder / f"{n}.tar"
        with tarfile.open(path, "w") as tar:
            for index in range(start, min(start + per_shard, len(samples))):
                for field, data in samples[index].items():
                    _add(tar, f"{key_format % index}.{field}", data)
        shards.append(path)
    (folder / "nshards.txt").write_text(f"{len(shards)}\n")
    return shards


def retrieval_samples(n: int, fmt: str = "jpg", seed: int = 0) -> list[dict]:
    """Samples with one image (JPEG, or lossless webp) and 3-5 newline-joined captions with a
    blank line among them (it must be dropped)."""
    samples = []
    for i in range(n):
        image = pattern((18, 14), seed=1000 * seed + i, mode="L" if i % 3 == 2 else "RGB")
        data = (encode(image, "WEBP", lossless=True) if fmt == "webp"
                else encode(image, "JPEG", quality=95))
        captions = [f"caption {j} of image {i}" for j in range(3 + i % 3)]
        text = "\n".join(captions[:1] + [""] + captions[1:]) + "\n"
        samples.append({fmt: data, "txt": text.encode()})
    return samples


def imagenet_samples(labels: list[int], seed: int = 0) -> list[dict]:
    return [{"webp": encode(pattern((16, 16), seed=seed + i), "WEBP", lossless=True),
             "cls": str(label).encode()} for i, label in enumerate(labels)]


# ----------------------------------------------------------------------------- compositionality


SUGARCREPE_PAIRS = [
    ("a red cube on a blue table", "a blue cube on a red table"),
    ("a dog next to a cat", "a cat next to a dog"),
    ("a man holding an umbrella", "a man holding a guitar"),
    ("two birds on a wire", "two birds under a wire"),
    ("a small boat on a lake", "a large boat on a lake"),
    ("a plate of food and a cup", "a plate of food"),
]


def write_sugarcrepe(root: Path, n: int = 6, mismatch: tuple[int, ...] = (),
                     seed: int = 0) -> list[dict]:
    """`data/test-00000-of-00001.parquet` as SugarCrepe's publishing script wrote it: `image`,
    `tested_labels` [positive, negative] and `true_label`, a ClassLabel whose names are captions
    (here every caption of the fixture, in sorted order, as the real one holds every caption of
    all subsets). Rows in `mismatch` get a label naming their *negative* caption."""
    import datasets

    rows = []
    for i in range(n):
        pos, neg = SUGARCREPE_PAIRS[i % len(SUGARCREPE_PAIRS)]
        pos, neg = f"{pos} ({seed}.{i})", f"{neg} ({seed}.{i})"
        rows.append({"image": pattern((20, 16), seed=500 + 10 * seed + i),
                     "tested_labels": [pos, neg], "label_name": neg if i in mismatch else pos})
    names = sorted({c for r in rows for c in r["tested_labels"]})
    features = datasets.Features({"image": datasets.Image(),
                                  "tested_labels": datasets.List(datasets.Value("string")),
                                  "true_label": datasets.ClassLabel(names=names)})
    columns = {"image": [image_cell(r["image"], f"sc{i}.png") for i, r in enumerate(rows)],
               "tested_labels": [r["tested_labels"] for r in rows],
               "true_label": [names.index(r["label_name"]) for r in rows]}
    write_parquet(root / "data" / "test-00000-of-00001.parquet", columns, features)
    return rows


ARO_RELATIONS = ["on", "on", "on", "behind", "holding", "behind", "on", "holding"]


def write_aro_pairs(root: Path, n: int = 8, column: str | None = "relation_name",
                    tags: list[str] | None = None, bbox: bool = True,
                    seed: int = 0) -> list[dict]:
    """ARO VG-Relation / VG-Attribution: `image`, `true_caption`, `false_caption`, and
    optionally a tag column (`relation_name`, or `attributes` as a list of two) and `bbox`
    [x, y, w, h] (inside the 40 x 30 image)."""
    import datasets

    tags = tags or ARO_RELATIONS
    rows = []
    for i in range(n):
        tag = tags[i % len(tags)]
        rows.append({"image": pattern((40, 30), seed=700 + 10 * seed + i),
                     "true_caption": f"the cup is {tag} the table {i}",
                     "false_caption": f"the table is {tag} the cup {i}", "tag": tag,
                     "bbox": [2 + i % 3, 3, 30, 20]})
    spec = {"image": datasets.Image(), "true_caption": datasets.Value("string"),
            "false_caption": datasets.Value("string")}
    columns = {"image": [image_cell(r["image"], f"aro{i}.png") for i, r in enumerate(rows)],
               "true_caption": [r["true_caption"] for r in rows],
               "false_caption": [r["false_caption"] for r in rows]}
    if column == "attributes":
        spec[column] = datasets.List(datasets.Value("string"))
        columns[column] = [r["tag"].split("_") for r in rows]
    elif column:
        spec[column] = datasets.Value("string")
        columns[column] = [r["tag"] for r in rows]
    if bbox:
        spec["bbox"] = datasets.List(datasets.Value("int32"))
        columns["bbox"] = [r["bbox"] for r in rows]
    write_parquet(root / "data" / "test-00000-of-00001.parquet", columns,
                  datasets.Features(spec))
    return rows


def write_aro_order(root: Path, n: int = 6, seed: int = 0) -> list[dict]:
    """ARO COCO-/Flickr-Order: `images` (a list holding one image), `correct_caption`,
    `hard_text_1`..`hard_text_4` (word-order perturbations)."""
    import datasets

    rows = []
    for i in range(n):
        words = f"a brown dog runs on the beach {i}".split()
        hard = [" ".join(words[k:] + words[:k]) for k in (1, 2, 3, 4)]
        rows.append({"image": pattern((24, 18), seed=900 + 10 * seed + i),
                     "captions": [" ".join(words)] + hard})
    features = datasets.Features({"images": datasets.List(datasets.Image()),
                                  "correct_caption": datasets.Value("string"),
                                  **{f"hard_text_{k}": datasets.Value("string")
                                     for k in range(1, 5)}})
    columns = {"images": [[image_cell(r["image"], f"ord{i}.png")] for i, r in enumerate(rows)],
               "correct_caption": [r["captions"][0] for r in rows],
               **{f"hard_text_{k}": [r["captions"][k] for r in rows] for k in range(1, 5)}}
    write_parquet(root / "data" / "test-00000-of-00001.parquet", columns, features)
    return rows
