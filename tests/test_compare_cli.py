"""`python -m engineered_latents compare`, in-process: files, printout, bad input."""

import json

import numpy as np
import pytest

from engineered_latents.__main__ import main


def _compare(tmp_path, *args):
    out = tmp_path / "out"
    code = main(["compare", "--dataset", "demo", "--count", "3", "--n-eig", "5",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(out), *args])
    return code, out


def test_compare_writes_json_and_npz_and_prints_the_changed_words(tiny_clip,
                                                                   tiny_clip_small_grid,
                                                                   tmp_path, capsys):
    code, out = _compare(tmp_path, "--model", tiny_clip, "--model-b", tiny_clip_small_grid,
                         "--mode", "joint")
    assert code == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "compare.json").read_text())
    a, b = result["models"]
    assert (a["model"], b["model"]) == (tiny_clip, tiny_clip_small_grid)
    assert (a["patches"], b["patches"]) == (49, 16) and len(a["pairs"]) == 6
    for pa, pb, d in zip(a["pairs"], b["pairs"], result["difference"]):
        assert pa["words"] == pb["words"] == d["words"]
        np.testing.assert_allclose(d["b_minus_a"], np.array(pb["word_level_scores"])
                                   - np.array(pa["word_level_scores"]), atol=2e-6)
    assert [m["a"] for m in result["matches"]] == list(range(5))
    assert set(result["analyses"]) == {"agreement", "clip_correlation", "word_emphasis"}
    arrays = np.load(out / "compare.npz")
    assert arrays["word_scores_a"].shape[0] == 6 and arrays["word_difference"].shape[2] == 5
    assert arrays["patch_maps_b"].shape[1] == 17 and arrays["clip_scores_a"].shape == (6,)
    assert "changed" in printed and "eig  1" in printed and "matches" in printed
    top = result["analyses"]["word_emphasis"]["1"][0]["word"]
    assert top in printed.split("eig  1", 2)[-1]


def test_two_layers_of_one_model_in_the_shared_basis(tiny_clip, tmp_path, capsys):
    code, out = _compare(tmp_path, "--model", tiny_clip, "--layer-b", "1")
    assert code == 0
    result = json.loads((out / "compare.json").read_text())
    assert result["shared_basis"] and result["models"][1]["spec"]["layer"] == 1
    assert result["models"][0]["eigenvalues"] == result["models"][1]["eigenvalues"]
    assert "layer 1" in capsys.readouterr().out


def test_the_same_spec_twice_is_allowed_with_a_note(tiny_clip, tmp_path, capsys):
    code, out = _compare(tmp_path, "--model", tiny_clip, "--model-b", tiny_clip)
    assert code == 0
    result = json.loads((out / "compare.json").read_text())
    assert all(v in (0, None) for d in result["difference"] for row in d["b_minus_a"]
               for v in row)
    assert "zero by construction" in capsys.readouterr().out
    assert main(["history", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "compare vs" in capsys.readouterr().out  # the run history lists it


@pytest.mark.parametrize("args,needle", [
    (["--layer-b", "9"], "Model b"),
    (["--model-b", "/nonexistent/model"], "Model b (/nonexistent/model)"),
    (["--n-eig", "1"], "--n-eig"),
    (["--layer-b", "x"], "--layer-b"),
    (["--mode", "both"], "--mode"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_clip, tmp_path, capsys, args, needle):
    code, out = _compare(tmp_path, "--model", tiny_clip, *args)
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and needle in errors[0]
    assert not (out / "compare.json").exists()


def test_an_output_path_that_is_a_file_is_refused_before_the_work(tiny_clip, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["compare", "--model", tiny_clip, "--out", str(blocker)])
    assert code == 2 and "--out" in capsys.readouterr().err
