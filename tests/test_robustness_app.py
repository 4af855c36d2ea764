"""Every bad input through the app's API (gradio_client, tiny model, in-process server): the user
gets a message that says what happened and what to do, the app keeps answering, and the cache
stays intact (a slice cut before every case is still answered from the cache after it).
The library and CLI side of the same cases is in test_robustness_cli.py."""

import io
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image
from plotly_helpers import array as _array
from plotly_helpers import figure as _figure

from engineered_latents.ui import upload as up
from engineered_latents.ui.testing import serve

CUT_OUTPUTS = ["note", "status", "banner", "gallery", "pair", "word", "eig", "overlay", "rgb",
               "words", "affinity", "spectrum", "clusters", "top_words", "cluster_table", "timings"]
FIGURES = ["overlay", "rgb", "words", "affinity", "spectrum", "clusters"]
SMALL = dict(n_eig=6, clusters=3)  # small cuts keep the tests fast
BASELINE = dict(start=1, count=1, **SMALL)
MAX_UPLOAD_MB = 2  # EL_MAX_UPLOAD for this module's server (the default is 20 MB)


@pytest.fixture(scope="module")
def server(tiny_clip, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EL_MAX_UPLOAD", f"{MAX_UPLOAD_MB}mb")
        # no default view at start-up: these tests cut their own slices
        with serve(tiny_clip, tmp_path_factory.mktemp("robust_app"), warm_up=False) as (demo,
                                                                                       url):
            client = Client(url, verbose=False, download_files=False)
            first = _named(client.predict(api_name="/cut", **BASELINE))
            assert "demo 1..1: 2 pairs" in first["status"]
            yield demo, url


@pytest.fixture
def client(server):
    return Client(server[1], verbose=False, download_files=False)


def _named(result) -> dict:
    assert len(result) == len(CUT_OUTPUTS)
    return dict(zip(CUT_OUTPUTS, result))


def _cut(client, **kwargs) -> tuple[dict, list[str]]:
    """/cut's outputs and the warnings the page showed (gr.Warning) while it ran."""
    job = client.submit(api_name="/cut", **kwargs)
    out = _named(job.result(timeout=180))
    shown = []
    updates = job.communicator.updates
    while not updates.empty():
        update = updates.get_nowait()
        if getattr(update, "log", None):
            shown.append(update.log[0])
    return out, shown


def _refused(client, match: str, **kwargs) -> str:
    with pytest.raises(AppError, match=match) as caught:
        client.predict(api_name="/cut", **kwargs)
    return str(caught.value)


def _still_works(server, client=None) -> None:
    """The app keeps answering and the cache is intact: the slice cut at start comes back from
    the cache (the index database and its value file are still readable)."""
    client = client or Client(server[1], verbose=False, download_files=False)
    out = _named(client.predict(api_name="/cut", **BASELINE))
    assert "demo 1..1: 2 pairs" in out["status"]
    assert "from the cache" in out["timings"], out["timings"]
    assert list(Path(server[0].explorer.cache.directory).glob("*.db"))


def _upload(client, paths, captions=None, **kwargs):
    captions = "\n".join(f"picture {i}" for i in range(len(paths))) if captions is None \
        else captions
    return _cut(client, dataset="upload", files=[handle_file(str(p)) for p in paths],
                captions=captions, **{**SMALL, **kwargs})




# ----------------------------------------------------------------------------- slices


@pytest.mark.parametrize("bad, message", [
    (dict(start=-1), "less than minimum value 0"),  # Gradio's own bound check
    (dict(start=24, count=1), "Start 24 is outside the dataset, which has 24 examples"),
    (dict(start=20, count=8), "ask for at most 4 from start 20"),
    (dict(count=0), "less than minimum value 1"),
    (dict(count=17), "limit of 16 per run.*EL_MAX_COUNT"),
    (dict(count=30), "ask for at most 24"),
    (dict(indices="1, 1"), "Duplicate indices.*list each example once"),
    (dict(indices="3, 99"), "Index 99 is outside the dataset.*0..23"),
    (dict(indices="-3"), "Index -3 is outside the dataset"),
    (dict(indices="1.5"), "'1.5' is not an index: list whole numbers"),
    (dict(indices="two, 3"), "'two' is not an index"),
    (dict(indices="9-2"), "write it low-high"),
    (dict(indices="0-20"), "21 examples is more than the limit of 16"),
])
def test_bad_slices(server, client, bad, message):
    _refused(client, message, **{**SMALL, **bad})
    _still_works(server, client)


def test_an_error_keeps_the_sessions_last_run(client):
    before = _named(client.predict(api_name="/cut", **BASELINE))
    _refused(client, "outside the dataset", start=99, count=1, **SMALL)
    word, *_ = client.predict(1, api_name="/pair")  # pair 1 of the last good run
    caption = before["gallery"][1]["caption"].split(": ", 2)[2]
    assert [c[0] for c in word["choices"][1:]] == caption.split()


# ----------------------------------------------------------------------------- NCut settings


@pytest.mark.parametrize("bad, message", [
    (dict(n_eig=0), "less than minimum value 2"),
    (dict(n_eig=101), "greater than maximum value 100"),
    (dict(n_eig=3, clusters=6), "6 clusters need at least as many eigenvectors, but n_eig is 3"),
    (dict(clusters=1), "Clusters is 1: allowed \\[2, 100\\]"),  # 0 means min(6, n_eig)
    (dict(sharpness=1.5), "greater than maximum value 0.99"),
])
def test_bad_ncut_settings(server, client, bad, message):
    _refused(client, message, **{**BASELINE, **bad})
    _still_works(server, client)


def test_two_eigenvectors_are_enough_for_every_view(client):
    """n_eig 2 (the least): RGB repeats eigenvector 1, the eigenvector slider is fixed at 1
    (Gradio refuses a slider whose minimum is not below its maximum) and the loss tab's k
    slider likewise; every view still answers."""
    out, _ = _cut(client, start=2, count=1, n_eig=2, clusters=2)
    assert "demo 2..2: 2 pairs" in out["status"] and "2 eigenvectors" in out["status"]
    assert out["eig"]["value"] == 1 and out["eig"]["interactive"] is False
    eig, *_ = client.predict(1, -1, 1, "eigenvector", True, False, api_name="/words")
    assert eig["minimum"] == 1 and eig["interactive"] is False
    eig, *_ = client.predict(1, -1, 1, "eigenvector", False, True, api_name="/words")
    assert (eig["minimum"], eig["maximum"], eig["interactive"]) == (0, 1, True)
    k, note, *_ = client.predict(2, 0, 2, 5, 0, 1, 3, 2, api_name="/loss")
    assert k["value"] == 1 and "k = 1 of 1..1" in note


def test_n_eig_above_the_number_of_nodes_is_capped_with_a_warning(server, client, tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (64, 64), (10, 120, 30)).save(path)
    out, shown = _upload(client, [path], "dog", n_eig=60)  # 49 patches x 1 word = 49 nodes
    assert "49 nodes" in out["status"] and "49 eigenvectors" in out["status"]
    assert any("n_eig 60 was capped at 49" in s for s in shown), shown
    _still_works(server, client)


def test_every_caption_the_same_and_one_word_captions(client, tmp_path):
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"same{k}.png")
        Image.new("RGB", (30, 30), (60 * k, 90, 9)).save(paths[-1])
    for captions, words in (("a dog\na dog\na dog", ["a", "dog"]), ("dog\ncat\nsky", ["dog"])):
        for mode in ("scalar", "joint"):
            out, _ = _upload(client, paths, captions, mode=mode)
            assert "upload 0..2: 3 pairs" in out["status"], (captions, mode)
            assert [c[0] for c in out["word"]["choices"][1:]] == words
            assert np.isfinite(_array(_figure(out["words"]).data[0].z).astype(float)).all()


# ----------------------------------------------------------------------------- uploads


def _image(kind: str) -> Image.Image:
    rng = np.random.default_rng(sum(map(ord, kind)))
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    if kind == "RGBA":
        return Image.fromarray(np.dstack([rgb, np.full((40, 40), 100, np.uint8)]))
    if kind == "L":
        return Image.fromarray(rgb[..., 0])
    if kind == "CMYK":
        return Image.fromarray(rgb).convert("CMYK")
    if kind == "P":
        return Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    if kind == "16-bit":
        return Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)  # mode I;16
    if kind == "1x1":
        return Image.new("RGB", (1, 1), tuple(int(v) for v in rgb[0, 0]))
    if kind == "10000x1":
        return Image.new("RGB", (10000, 1), (0, 200, 0))
    if kind == "1x10000":
        return Image.new("L", (1, 10000), 90)
    raise ValueError(kind)


@pytest.mark.parametrize("kind, suffix", [
    ("RGBA", ".png"), ("L", ".png"), ("CMYK", ".jpg"), ("P", ".png"), ("16-bit", ".png"),
    ("1x1", ".png"), ("10000x1", ".png"), ("1x10000", ".png"),
])
def test_odd_images_are_normalised(server, client, tmp_path, kind, suffix):
    path = tmp_path / f"odd{suffix}"
    _image(kind).save(path)
    out, shown = _upload(client, [path])
    assert "upload 0..0: 1 pairs" in out["status"] and not shown
    assert len(out["gallery"]) == 1
    _still_works(server, client)


def test_exif_rotated_photo_is_shown_the_right_way_up(client, tmp_path):
    """Stored 80 x 40 with red left and blue right, EXIF orientation 6 (rotate 90° clockwise to
    view): upright it is 40 x 80, red on top and blue below, and so is the gallery's picture."""
    stored = Image.new("RGB", (80, 40), (255, 0, 0))
    stored.paste((0, 0, 255), (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    out, _ = _upload(client, [path])
    shown = httpx.get(out["gallery"][0]["image"]["url"], timeout=30)
    assert shown.status_code == 200
    pixels = np.asarray(Image.open(io.BytesIO(shown.content)).convert("RGB")).astype(int)
    top, bottom = pixels[10, pixels.shape[1] // 2], pixels[-10, pixels.shape[1] // 2]
    assert top[0] > 200 and top[2] < 60, top  # red
    assert bottom[2] > 200 and bottom[0] < 60, bottom  # blue


def test_a_huge_image_above_the_decompression_bomb_limit_is_refused(server, client, tmp_path,
                                                                     monkeypatch):
    # PIL's limit lowered instead of writing a real 10000 x 10000 image: the same code path
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    path = tmp_path / "huge.png"
    Image.new("RGB", (200, 150), (3, 4, 5)).save(path)  # 30,000 px
    message = _refused(client, "200 x 150 = 30,000 pixels, above the safety limit of 20,000",
                       dataset="upload", files=[handle_file(str(path))], captions="big",
                       **SMALL)
    assert "shrink it" in message and "Use other examples" in message
    monkeypatch.undo()
    _still_works(server, client)


def _png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), np.uint8)).save(
        buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, content, message", [
    ("truncated.png", _png_bytes(1)[:2000], "unreadable image"),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "unreadable image"),
    ("letter.png", b"Dear user, this is text with an image extension.",
     "not a picture format PIL knows"),
])
def test_broken_files_with_an_image_extension_are_named(server, client, tmp_path, name, content,
                                                        message):
    path = tmp_path / name
    path.write_bytes(content)
    text = _refused(client, message, dataset="upload", files=[handle_file(str(path))],
                    captions="a picture", **SMALL)
    assert f"000_{name}" in text and "None of the 1 examples could be read" in text
    assert "0x7f" not in text  # no Python object addresses
    _still_works(server, client)


def test_a_broken_file_among_good_ones_is_skipped_with_a_warning(client, tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    Image.new("RGB", (50, 50), (250, 20, 90)).save(good)
    bad.write_bytes(b"not an image")
    out, shown = _upload(client, [good, bad])
    assert "upload 0..1: 1 pairs" in out["status"]
    assert any("Skipped 1 unreadable image(s): #1 001_bad.png" in s for s in shown), shown


def test_a_non_image_file_type_is_refused_by_the_upload(server, client, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    _refused(client, "Invalid file type", dataset="upload", files=[handle_file(str(path))],
             captions="x", **SMALL)
    _still_works(server, client)


def test_more_files_than_the_upload_limit(server, client, tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (20, 20), (1, 2, 3)).save(path)
    _refused(client, "17 images is more than the limit of 16 per run: upload at most 16",
             dataset="upload", files=[handle_file(str(path))] * 17,
             captions="\n".join(["x"] * 17), **SMALL)
    _still_works(server, client)


def test_a_file_over_the_size_limit_is_refused(server, client, tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(_png_bytes(2) + os.urandom((MAX_UPLOAD_MB + 1) * 2**20))
    with pytest.raises(ValueError, match="exceeds the maximum file size"):  # the client checks
        client.predict(api_name="/cut", dataset="upload", files=[handle_file(str(path))],
                       captions="x")
    # and the server itself refuses it, whatever the client
    response = httpx.post(server[1].rstrip("/") + "/gradio_api/upload", timeout=60,
                          files={"files": ("big.png", path.read_bytes(), "image/png")})
    assert response.status_code == 413
    assert f"maximum allowed size of {MAX_UPLOAD_MB * 2**20}" in response.text
    _still_works(server, client)


# ----------------------------------------------------------------------------- captions


@pytest.mark.parametrize("captions", ["", "   \n\t\n  "])
def test_empty_or_blank_captions(server, client, tmp_path, captions):
    path = tmp_path / "one.png"
    Image.new("RGB", (20, 20), (9, 9, 9)).save(path)
    _refused(client, r"1 images but 0 captions \(blank lines do not count\): write one caption "
             "per line", dataset="upload", files=[handle_file(str(path))], captions=captions,
             **SMALL)
    _still_works(server, client)


def test_a_300_word_caption_is_truncated_with_a_warning(client, tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (30, 30), (200, 9, 9)).save(path)
    out, shown = _upload(client, [path], " ".join(["word"] * 300))
    warning = next(s for s in shown if "Caption truncated to 77 tokens" in s)
    assert len(warning) <= 600  # the caption is shortened in the message
    assert len(out["word"]["choices"]) == 1 + 75  # "all words" + 75 tokens between start/end


def test_emoji_and_non_latin_captions_are_shown_as_words(client, tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (30, 30), (9, 200, 9)).save(path)
    words = ["собака", "كلب", "床", "ça", "🐶", "naïve"]
    out, _ = _upload(client, [path], " ".join(words))
    assert [c[0] for c in out["word"]["choices"][1:]] == words
    assert list(_figure(out["words"]).layout.yaxis.ticktext) == words


def test_html_and_markdown_captions_are_text_everywhere(client, tmp_path):
    paths = []
    for k in range(2):
        paths.append(tmp_path / f"p{k}.png")
        Image.new("RGB", (30, 30), (40 * k, 9, 200)).save(paths[-1])
    captions = ["<img src=x onerror=alert(1)> <script>alert(2)</script>",
                "**bold** _it_ [link](https://example.com) # head"]
    out, _ = _upload(client, paths, "\n".join(captions))
    assert [g["caption"].split(": ", 2)[2] for g in out["gallery"]] == captions
    for name in FIGURES:
        dumped = out[name]["plot"]
        for raw in ("<img", "<script"):  # escaped: "&lt;img ..." is text in plotly
            assert raw not in dumped, (name, raw)
    ticks = list(_figure(out["words"]).layout.yaxis.ticktext)
    assert "&lt;" in ticks and "script" in ticks and not any("<" in t for t in ticks)
    # a table or Markdown output never carries the caption's markup as markup
    for name in ("note", "status", "timings"):
        assert "<img" not in json.dumps(out[name]) and "**bold**" not in json.dumps(out[name])


@pytest.mark.parametrize("field, value", [
    ("model", "<img src=x onerror=alert(1)>"),
    ("indices", "<b/id=elxss>1</b>"),
])
def test_messages_echoing_html_are_escaped(server, client, field, value):
    """Gradio renders error and warning toasts as HTML: what the user typed comes back as text."""
    message = _refused(client, "&lt;", **{**BASELINE, field: value})
    assert "<img" not in message and "<b" not in message
    _still_works(server, client)


# ----------------------------------------------------------------------------- models


def _hub_refusal(kind: str):
    import httpx2
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cls = {"unknown": RepositoryNotFoundError, "gated": GatedRepoError}[kind]
    request = httpx2.Request("GET", "https://huggingface.co/api/models/nobody/no-such-clip")
    return cls(f"{kind} repo", response=httpx2.Response(404 if kind == "unknown" else 401,
                                                          request=request))


@pytest.mark.parametrize("network, message", [
    ("offline", "there is no network and it is not in the local Hugging Face cache"),
    ("unknown", r"no such model on the Hugging Face Hub \(check the id, or set HF_TOKEN"),
    ("gated", "it is gated: accept its terms on its Hub page and set HF_TOKEN"),
])
def test_a_hub_model_that_cannot_be_had(server, client, monkeypatch, network, message):
    import huggingface_hub

    import engineered_latents.models as models

    if network != "offline":  # as if the Hub answered: not found, or gated
        def download(repo_id, local_files_only=False, **kwargs):
            if local_files_only:
                raise FileNotFoundError(repo_id)
            raise _hub_refusal(network)

        monkeypatch.setattr(models, "hub_offline", lambda timeout=2.0: False)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    _refused(client, "Cannot load model 'nobody/no-such-clip': " + message,
             model="nobody/no-such-clip", **BASELINE)
    monkeypatch.undo()
    _still_works(server, client)


def test_a_local_folder_that_is_not_a_clip_model(server, client, tmp_path, monkeypatch):
    models = tmp_path / "models"
    (models / "bert").mkdir(parents=True)
    (models / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (models / "empty").mkdir()
    monkeypatch.setenv("EL_MODEL_DIRS", str(models))
    message = _refused(client, "'bert' is a 'bert' model, not a CLIP model: give a transformers "
                       "CLIP checkpoint", model="local:bert", **BASELINE)
    assert str(tmp_path) not in message  # no server path in the page
    _refused(client, "No local model 'empty' among the allowed folders", model="local:empty",
             **BASELINE)
    _still_works(server, client)


@pytest.mark.parametrize("typed", [
    "/etc", "../../etc/passwd", "~/.ssh", "file:///etc/passwd", "C:\\Windows",
    "local:../../etc",
    "TINY_CLIP",  # a real CLIP on disk, but outside EL_MODEL_DIRS
    "RELATIVE",  # a folder relative to the server's working directory, named like a Hub id
])
def test_paths_outside_the_allowed_places_are_refused_before_any_loading(
        server, client, tiny_clip, tmp_path, monkeypatch, typed):
    import engineered_latents.models as models
    import engineered_latents.pipeline as pipeline

    touched = []
    for module, name in ((pipeline, "resolve_model"), (pipeline, "load_model"),
                         (models, "model_dir_digest"), (models, "_resolve_local")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name,
                            lambda *a, _real=real, _name=name, **k: touched.append(_name)
                            or _real(*a, **k))
    if typed == "RELATIVE":
        (tmp_path / "clip-copy").mkdir()
        monkeypatch.chdir(tmp_path)
        typed = "clip-copy"
    typed = tiny_clip if typed == "TINY_CLIP" else typed
    message = _refused(client, "EL_MODEL_DIRS", model=typed, **BASELINE)
    assert touched == [], touched
    assert tiny_clip not in message or typed == tiny_clip
    monkeypatch.undo()
    _still_works(server, client)


def test_a_model_too_big_for_memory_is_refused_before_loading(server, client, tiny_clip,
                                                              monkeypatch):
    from transformers import CLIPModel

    import engineered_latents.models as models

    models._load_cached.cache_clear()  # the tiny model is loaded again: the pre-check runs
    loads = []
    monkeypatch.setattr(models, "available_memory", lambda device: 64 * 2**10)  # 64 kB free
    monkeypatch.setattr(CLIPModel, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(a)))
    message = _refused(client, r"needs about .* GB on cpu in float32, but only 0.0 GB are free: "
                       "pick a smaller model or free memory", start=9, count=1, **SMALL)
    assert loads == []  # refused before the weights were read
    assert str(Path(tiny_clip).parent) not in message  # the local default model by name only
    monkeypatch.undo()
    models._load_cached.cache_clear()
    out, _ = _cut(client, start=9, count=1, **SMALL)
    assert "demo 9..9: 2 pairs" in out["status"]
    _still_works(server, client)


# ----------------------------------------------------------------------------- datasets


def test_a_gated_dataset_without_a_token(server, client, monkeypatch):
    import httpx2
    from huggingface_hub.errors import GatedRepoError

    from engineered_latents.data import hub

    def refuse(repo_id):
        request = httpx2.Request("GET", f"https://huggingface.co/api/datasets/{repo_id}")
        raise GatedRepoError("Cannot access gated repo",
                             response=httpx2.Response(401, request=request))

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub, "offline", lambda: False)  # as if the Hub were reachable
    monkeypatch.setattr(hub, "_REVISIONS", {})
    monkeypatch.setattr(hub, "fetch_revision", refuse)
    message = _refused(client, "gated", dataset="winoground", start=0, count=1, **SMALL)
    assert "HF_TOKEN" in message and "accept the terms" in message
    monkeypatch.undo()
    _still_works(server, client)


def test_no_network_and_nothing_cached(server, client):
    message = _refused(client, "Hugging Face Hub cannot be reached", dataset="coco", start=0,
                       count=1, **SMALL)
    assert "not in the cache" in message and "network access" in message
    _still_works(server, client)


def test_an_unknown_subset(server, client):
    _refused(client, "not one of the choices", dataset="whatsup-z", **BASELINE)
    _still_works(server, client)


# ----------------------------------------------------------------------------- staged uploads


def _staged(root: Path, name: str, age_s: float = 0) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "captions.json").write_text("{}")
    if age_s:
        stamp = time.time() - age_s
        os.utime(folder, (stamp, stamp))
    return folder


def test_staged_uploads_are_pruned_by_age_and_count(tmp_path):
    root = tmp_path / "el_uploads"
    old = _staged(root, "old", age_s=up.KEEP_S + 60)
    half = _staged(root, "staging-abc", age_s=up.KEEP_S + 60)  # a staging left by a crash
    fresh = [_staged(root, f"fresh{k}", age_s=100 - k) for k in range(5)]
    removed = up.prune(root, max_folders=4)
    assert not old.exists() and not half.exists()
    # newest first: fresh4 .. fresh2 stay (3 + the folder being staged = 4)
    assert [f.exists() for f in fresh] == [False, False, True, True, True]
    assert set(removed) == {old, half, fresh[0], fresh[1]}


def test_staging_again_keeps_an_upload_fresh_and_prunes_the_old(tmp_path):
    root = tmp_path / "el_uploads"
    image = tmp_path / "a.png"
    Image.new("RGB", (10, 10), "red").save(image)
    first = Path(up.stage_upload([str(image)], "red", 4, root=root))
    stamp = time.time() - up.KEEP_S + 5  # almost an hour old
    os.utime(first, (stamp, stamp))
    old = _staged(root, "someone-else", age_s=up.KEEP_S + 1)
    assert up.stage_upload([str(image)], "red", 4, root=root) == str(first)
    assert time.time() - first.stat().st_mtime < 60  # used again: fresh
    assert not old.exists()


def test_a_run_whose_staged_upload_was_removed_says_to_upload_again(server, client, tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (30, 30), (77, 7, 177)).save(path)
    _upload(client, [path], "purple square")
    staged = [folder for folder in up.upload_root().iterdir()
              if (folder / "captions.json").is_file() and json.loads(
                  (folder / "captions.json").read_text()) == {"000_one.png": "purple square"}]
    assert len(staged) == 1
    staged = staged[0]
    shutil.rmtree(staged)
    server[0].explorer._runs = type(server[0].explorer._runs)(8)  # as if evicted from memory
    with pytest.raises(AppError, match="no longer on the server.*upload them again"):
        client.predict(0, api_name="/pair")
    out, _ = _upload(client, [path], "purple square")  # uploading again works
    assert "upload 0..0: 1 pairs" in out["status"]
    _still_works(server, client)


@pytest.mark.parametrize("field", ["dataset", "mode", "source"])
def test_a_huge_or_marked_up_choice_is_refused_briefly_and_escaped(server, client, field):
    """Gradio's own refusal echoes the whole value (a dropdown's unescaped): ours quotes 40
    characters, escaped, and the app answers on."""
    value = '<a href="https://evil.example/login">Session expired</a>' + "x" * 100_000
    message = _refused(client, "is not one of the choices", **{**BASELINE, field: value})
    assert len(message) < 300
    assert "<a href" not in message and "evil.example/login\">" not in message
    _still_works(server, client)


def test_huge_indices_are_refused_before_they_are_expanded(server, client):
    """8,000 ranges of 10,000 (64 KB of text) once took 2 GB and the model pool for 25 s."""
    _refused(client, "characters long|more than the limit",
             **{**BASELINE, "indices": ",".join(["0-10000"] * 8000)})
    _refused(client, "more than the limit", **{**BASELINE, "indices": "0-10000,0-10000"})
    _still_works(server, client)


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40, 2**70])
def test_seeds_outside_32_bits_are_refused_by_cut_and_landscape(server, client, seed):
    _refused(client, "Seed is|minimum value 0|maximum value", **{**BASELINE, "seed": seed})
    client.predict(api_name="/cut", **BASELINE)
    with pytest.raises(AppError, match="Seed is"):
        client.predict(2, 3, 5, 0.5, 200, seed, True, api_name="/landscape")
    _still_works(server, client)
