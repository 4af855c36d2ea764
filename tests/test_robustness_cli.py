"""Every bad input a user can give the library or the CLI gets a clear answer (issue: robustness).
Library-level cases run in-process; a few go through the CLI to check exit codes."""

import json

import numpy as np
import pytest
from PIL import Image

import engineered_latents as el


def _upload(folder, captions, images=None):
    folder.mkdir(exist_ok=True)
    images = images or [Image.new("RGB", (40, 40), (40 * i, 200, 255 - 40 * i))
                        for i in range(len(captions))]
    for i, im in enumerate(images):
        im.save(folder / f"img{i}.png")
    (folder / "captions.json").write_text(json.dumps(
        {f"img{i}.png": c for i, c in enumerate(captions)}))
    return str(folder)


def _cut(tiny_clip, tmp_path, data_path, count, **cut):
    return el.compute_cuts(el.SliceSpec("upload", 0, count, data_path=data_path),
                           el.CutSpec(**{"n_eig": 8, "clusters": 4, **cut}),
                           el.ModelSpec(tiny_clip), cache=el.Cache(tmp_path / "cache"))


@pytest.mark.parametrize("spec, message", [
    (dict(start=-1), "negative"),
    (dict(start=24), "outside the dataset"),
    (dict(start=20, count=8), "at most 4"),
    (dict(count=0), "at least 1"),
    (dict(count=30), "outside the dataset"),
    (dict(indices=(1, 1)), "Duplicate"),
    (dict(indices=(3, 99)), "outside the dataset"),
])
def test_bad_slices_say_what_to_do(tiny_clip, tmp_path, spec, message):
    with pytest.raises(el.UserError, match=message):
        el.compute_cuts(el.SliceSpec("demo", **spec), el.CutSpec(n_eig=6, clusters=3),
                        el.ModelSpec(tiny_clip), cache=el.Cache(tmp_path))


def test_count_above_the_limit_names_the_setting(tiny_clip, tmp_path):
    settings = el.Settings(str(tmp_path), 1.0, max_count=4)
    with pytest.raises(el.UserError, match="EL_MAX_COUNT"):
        el.compute_cuts(el.SliceSpec("demo", 0, 5), el.CutSpec(), el.ModelSpec(tiny_clip),
                        cache=el.Cache(tmp_path), settings=settings)


def test_n_eig_above_the_number_of_nodes_is_capped_with_a_warning(tiny_clip, tmp_path):
    data = _upload(tmp_path / "up", ["dog"])  # one pair, a one-word caption: 49 nodes
    run = _cut(tiny_clip, tmp_path, data, 1, n_eig=500)
    assert run.result.eigvec.shape == (49, 49)
    assert any("capped at 49" in w for w in run.warnings)


def test_every_caption_the_same_still_cuts(tiny_clip, tmp_path):
    data = _upload(tmp_path / "up", ["a dog", "a dog", "a dog"])
    for mode in ("scalar", "joint"):
        run = _cut(tiny_clip, tmp_path, data, 3, mode=mode)
        assert [p.words for p in run.pairs] == [["a", "dog"]] * 3
        assert not np.isnan(run.word_scores(0)).any()


def test_mostly_identical_affinities_give_a_clear_error_not_a_math_error():
    from engineered_latents.cuts import run_ncut

    x = np.zeros((2000, 1), np.float32)  # 90 % zeros, as zero padding used to be
    x[:200, 0] = np.random.default_rng(0).random(200)
    with pytest.raises(el.UserError, match="NCut failed on this graph"):
        run_ncut(x, 10)


@pytest.mark.parametrize("caption, words", [
    ("a 🐶 on a 床", ["a", "🐶", "on", "a", "床"]),
    # CLIP's tokenizer splits punctuation off as words of its own; pieces of a word are merged
    ("<b>bold</b> & <a href=x>link</a>", ["<", "b", ">", "bold", "</", "b", ">", "&", "<", "a",
                                          "href", "=", "x", ">", "link", "</", "a", ">"]),
])
def test_emoji_non_latin_and_html_captions_come_back_as_written_words(tiny_clip, tmp_path,
                                                                      caption, words):
    data = _upload(tmp_path / "up", [caption])
    run = _cut(tiny_clip, tmp_path, data, 1, n_eig=6, clusters=3)
    assert run.pairs[0].words == words


def test_a_300_word_caption_is_truncated_with_a_warning(tiny_clip, tmp_path):
    data = _upload(tmp_path / "up", [" ".join(["word"] * 300)])
    run = _cut(tiny_clip, tmp_path, data, 1, n_eig=6, clusters=3)
    assert len(run.pairs[0].tokens) == 75 and run.pairs[0].truncated
    assert any("truncated" in w for w in run.warnings)


@pytest.mark.parametrize("caption", ["", "   "])
def test_empty_captions_are_refused_with_a_message(tiny_clip, tmp_path, caption):
    data = _upload(tmp_path / "up", [caption])
    with pytest.raises(el.UserError, match="caption"):
        _cut(tiny_clip, tmp_path, data, 1)


def test_odd_images_in_an_upload_are_normalised_and_a_broken_one_is_skipped(tiny_clip,
                                                                            tmp_path):
    import io

    folder = tmp_path / "up"
    folder.mkdir()
    odd = {
        "a_1x1.png": Image.new("RGB", (1, 1), (255, 0, 0)),
        "b_tall.png": Image.new("L", (1, 10000), 128),
        "c_wide.png": Image.new("RGB", (10000, 1), (0, 255, 0)),
        "d_cmyk.jpg": Image.new("CMYK", (30, 30), (0, 255, 255, 0)),
        "e_16bit.png": Image.fromarray(np.full((20, 20), 40000, np.uint16)),
        "f_palette.png": Image.new("P", (20, 20), 3),
    }
    for name, image in odd.items():
        image.save(folder / name)
    buf = io.BytesIO()
    Image.new("RGB", (30, 30), (1, 2, 3)).save(buf, "PNG")
    (folder / "g_truncated.png").write_bytes(buf.getvalue()[:40])
    (folder / "h_not_an_image.png").write_text("hello")
    names = sorted(p.name for p in folder.iterdir())
    (folder / "captions.json").write_text(json.dumps({n: f"picture {n[0]}" for n in names}))
    run = el.compute_cuts(el.SliceSpec("upload", 0, 8, data_path=str(folder)),
                          el.CutSpec(n_eig=8, clusters=4), el.ModelSpec(tiny_clip),
                          cache=el.Cache(tmp_path / "cache"))
    assert [p.caption for p in run.pairs] == [f"picture {c}" for c in "abcdef"]
    skipped = " ".join(run.warnings)
    assert "g_truncated.png" in skipped and "h_not_an_image.png" in skipped
