"""The CLI as a user runs it: in-process through `main(argv)` (fast), plus one real process for
the exit status and output streams; and a table of bad values for every option of every command."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from engineered_latents.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(capsys, *args):
    """(status, stdout, stderr) of `python -m engineered_latents ARGS`, in this process."""
    capsys.readouterr()
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def messages(err: str) -> list[str]:
    """stderr without the progress lines ("[ 30%] encoding images")."""
    return [line for line in err.strip().splitlines() if not line.startswith("[")]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cuts_on_the_demo_slice_writes_outputs_and_reruns_from_cache(tiny_clip, in_tmp, capsys):
    args = ["cuts", "--model", tiny_clip, "--dataset", "demo", "--count", "2", "--n-eig", "8",
            "--out", in_tmp / "out"]
    status, out, err = run_cli(capsys, *args)
    assert status == 0, err
    assert "real weights local:" in out
    assert "eig  1" in out and "cuts miss" in out
    summary = json.loads((in_tmp / "out" / "summary.json").read_text())
    assert summary["n_eig"] == 8 and len(summary["pairs"]) == 4
    assert (in_tmp / "out" / "cuts.npz").is_file()
    status, out, _ = run_cli(capsys, *args)
    assert status == 0 and "cuts hit" in out
    again = json.loads((in_tmp / "out" / "summary.json").read_text())
    assert again["pairs"] == summary["pairs"] and again["eigenvalues"] == summary["eigenvalues"]


def test_default_output_directory_is_named_after_the_slice(tiny_clip, in_tmp, capsys):
    status, _, err = run_cli(capsys, "cuts", "--model", tiny_clip, "--start", "3", "--count", "1",
                             "--n-eig", "4", "--clusters", "2", "--mode", "joint")
    assert status == 0, err
    assert (in_tmp / "out" / "demo-3-1" / "summary.json").is_file()


def test_a_small_n_eig_works_without_clusters(tiny_clip, in_tmp, capsys):
    """The default --clusters (6) must not break a valid --n-eig below it: k = min(6, n_eig)."""
    status, out, err = run_cli(capsys, "cuts", "--model", tiny_clip, "--count", "2",
                               "--n-eig", "4")
    assert status == 0, err
    assert "clusters    k=4" in out
    summary = json.loads((in_tmp / "out" / "demo-0-2" / "summary.json").read_text())
    assert summary["clusters"]["k"] == 4
    # n_eig 3: the default RGB eigenvectors (1, 2, 3) are capped too
    status, _, err = run_cli(capsys, "cuts", "--model", tiny_clip, "--count", "2", "--n-eig", "3")
    assert status == 0, err


def test_demo_warning_is_printed_once_on_its_own_line(in_tmp, capsys):
    status, out, err = run_cli(capsys, "cuts", "--count", "1", "--n-eig", "4")
    assert status == 0, err
    both = out + err
    assert both.count("DEMO WEIGHTS:") == 1
    line = next(li for li in both.splitlines() if "DEMO WEIGHTS:" in li)
    assert line.startswith("WARNING")


def test_a_named_model_offline_says_what_to_do(in_tmp, capsys):
    status, _, err = run_cli(capsys, "cuts", "--model", "openai/clip-vit-base-patch32",
                             "--count", "1")
    assert status == 2
    assert "Leave the model out (no --model" in err and "offline toy model" in err
    assert len(messages(err)) == 1


@pytest.mark.parametrize("args, message", [
    (["--start", "500"], "outside the dataset"),
    (["--dataset", "nope"], "Unknown dataset"),
    (["--model", "/no/such/dir"], "does not exist"),
    (["--n-eig", "4", "--clusters", "6"], "raise --n-eig"),
])
def test_user_errors_exit_2_with_one_line(in_tmp, capsys, args, message):
    status, _, err = run_cli(capsys, "cuts", *args)
    assert status == 2
    assert message in err
    assert len(messages(err)) == 1 and messages(err)[0].startswith("error:")


def test_help_explains_every_option_and_the_program(capsys):
    status, out, _ = run_cli(capsys, "cuts", "--help")
    assert status == 0
    for option in ["--model", "--dataset", "--data-path", "--start", "--count", "--indices",
                   "--mode", "--n-eig", "--seed", "--device", "--cache-dir", "--out",
                   "--similarity", "--include-special", "--no-patch-norm", "--layer",
                   "--no-center", "--clusters", "--sharpness", "--crossed-pairs"]:
        assert option in out
    status, out, _ = run_cli(capsys, "--help")
    assert status == 0
    assert "Normalized Cut" in out and "see `--help`" not in out
    for command in ("cuts", "bench", "list", "history", "perf"):
        assert command in out


def test_a_real_process_exits_with_the_status_and_streams(tmp_path):
    """One subprocess: the exit status and where messages go, as a shell sees them."""
    env = {**os.environ, "PYTHONPATH": ROOT, "EL_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "engineered_latents", "cuts", "--seed", "-1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert result.stdout == "" and "--seed" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- bad values


@contextmanager
def _immutable(folder):
    """A folder nobody may write into, root included (chattr +i), for the duration."""
    folder.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.fail("chattr +i is needed to make a folder unwritable for root")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def _bad_cases():
    """(command and arguments, the option the message must name); {ro}, {file} and {dir} are an
    unwritable folder, an existing file and an existing folder."""
    return [
        (["cuts", "--seed", "-1"], "--seed"),
        (["cuts", "--seed", "1099511627776"], "--seed"),
        (["cuts", "--seed", "x"], "--seed"),
        (["cuts", "--sharpness", "nan"], "--sharpness"),
        (["cuts", "--sharpness", "inf"], "--sharpness"),
        (["cuts", "--sharpness", "1.5"], "--sharpness"),
        (["cuts", "--sharpness", "0"], "--sharpness"),
        (["cuts", "--max-count", "0"], "--max-count"),
        (["cuts", "--n-eig", "1"], "--n-eig"),
        (["cuts", "--n-eig", "100000"], "--n-eig"),
        (["cuts", "--clusters", "1"], "--clusters"),
        (["cuts", "--count", "0"], "--count"),
        (["cuts", "--start", "-1"], "--start"),
        (["cuts", "--indices", "-3"], "--indices"),
        (["cuts", "--mode", "bogus"], "--mode"),
        (["cuts", "--similarity", "l2"], "--similarity"),
        (["cuts", "--rgb", "1", "2", "-4"], "--rgb"),
        (["cuts", "--rgb", "1", "1", "2"], "RGB eigenvectors [1, 1, 2] repeat"),
        (["cuts", "--rgb", "1", "2", "20", "--n-eig", "4"], "between 0 and n_eig - 1 (3)"),
        (["cuts", "--colour", "pca"], "--colour"),
        (["cuts", "--perplexity", "1"], "--perplexity"),
        (["cuts", "--recursive", "0"], "--recursive"),
        (["cuts", "--recursive", "4"], "--recursive"),
        (["cuts", "--recursive", "x"], "--recursive"),
        (["cuts", "--layer", "999", "--model", "{model}"], "Layer 999"),
        (["cuts", "--layer", "-4", "--model", "{model}"], "Layer -4"),
        (["cuts", "--out", "{file}"], "--out"),
        (["cuts", "--out", "{file}/sub"], "--out"),
        (["cuts", "--out", "{ro}/out"], "--out"),
        (["bench", "--benchmark", "demo", "--batch-size", "0"], "--batch-size"),
        (["bench", "--benchmark", "demo", "--limit", "0"], "--limit"),
        (["bench", "--benchmark", "demo", "--json", "{ro}/r.json"], "--json"),
        (["bench", "--benchmark", "demo", "--json", "{dir}"], "--json"),
        (["perf", "--repeats", "0"], "--repeats"),
        (["perf", "--pairs", "1"], "--pairs"),
        (["perf", "--pairs", "16,x"], "--pairs"),
        (["perf", "--json", "{ro}/p.json"], "--json"),
        (["perf", "--train", "--train-steps", "1"], "--train-steps"),
        (["perf", "--train", "--b32-steps", "-1"], "--b32-steps"),
        (["perf", "--arch", "vit-x"], "--arch"),
        (["history", "--last", "0"], "--last"),
        (["train-toy", "--steps", "0"], "--steps"),
        (["train-toy", "--batch-size", "1"], "--batch-size"),
        (["train-toy", "--seed", "-5"], "--seed"),
        (["train-toy", "--aux-weight", "nan"], "--aux-weight"),
        (["train-toy", "--threads", "0"], "--threads"),
        (["train-toy", "--eval-n", "0"], "--eval-n"),
        (["train-toy", "--out", "{file}"], "--out"),
        (["train-toy", "--eval-only", "--out", "{dir}"], "--eval-only"),
        (["compare", "--top", "0"], "--top"),
        (["compare", "--n-eig", "1"], "--n-eig"),
        (["compare", "--seed", "4294967296"], "--seed"),
        (["compare", "--layer-b", "x"], "--layer-b"),
        (["compare", "--out", "{file}"], "--out"),
        (["train", "--out", "{dir}/t", "--lr", "0"], "--lr"),
        (["train", "--out", "{dir}/t", "--lr", "nan"], "--lr"),
        (["train", "--out", "{dir}/t", "--batch-size", "1"], "--batch-size"),
        (["train", "--out", "{dir}/t", "--steps", "0"], "--steps"),
        (["train", "--out", "{dir}/t", "--seed", "-1"], "--seed"),
        (["train", "--out", "{dir}/t", "--k", "0"], "--k"),
        (["train", "--out", "{dir}/t", "--alpha", "inf"], "--alpha"),
        (["train", "--out", "{dir}/t", "--val-fraction", "1.5"], "--val-fraction"),
        (["train", "--out", "{dir}/t", "--shuffle-buffer", "-1"], "--shuffle-buffer"),
        (["train", "--out", "{dir}/t", "--shuffle-buffer", "many"], "--shuffle-buffer"),
        (["train", "--out", "{file}"], "--out"),
        (["train", "--out", "{ro}/t"], "--out"),
    ]


@pytest.mark.parametrize("args, option", _bad_cases(), ids=lambda v: " ".join(v)
                         if isinstance(v, list) else v)
def test_bad_values_exit_2_with_one_line_naming_the_option(tiny_clip, tmp_path, monkeypatch,
                                                           capsys, args, option):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    with _immutable(tmp_path / "ro") as ro:
        argv = [a.format(ro=ro, file=tmp_path / "afile", dir=tmp_path / "adir",
                         model=tiny_clip) for a in args]
        status, out, err = run_cli(capsys, *argv)
    assert status == 2, (out, err)
    assert option in err
    assert "Traceback" not in err
    assert len(messages(err)) == 1, err


def test_after_bad_values_a_good_run_works_from_the_same_cache(tiny_clip, in_tmp, capsys):
    base = ["cuts", "--model", tiny_clip, "--count", "1", "--n-eig", "4"]
    assert run_cli(capsys, *base, "--seed", "-1")[0] == 2
    assert run_cli(capsys, *base, "--layer", "99")[0] == 2
    status, out, err = run_cli(capsys, *base)
    assert status == 0, err
    assert run_cli(capsys, *base)[1].count("cuts hit") == 1


def test_a_result_is_not_lost_when_writing_fails_after_the_run(tiny_clip, in_tmp, capsys,
                                                               monkeypatch):
    from engineered_latents import output

    def full_disk(run, folder):
        raise OSError(28, "No space left on device")

    real_save = output.save
    monkeypatch.setattr(output, "save", full_disk)
    status, _, err = run_cli(capsys, "cuts", "--model", tiny_clip, "--count", "1",
                             "--n-eig", "4", "--out", in_tmp / "o")
    assert status == 2
    assert "No space left on device" in err and "cached" in err and "--out" in err
    monkeypatch.setattr(output, "save", real_save)  # the disk has room again: same cache
    status, out, _ = run_cli(capsys, "cuts", "--model", tiny_clip, "--count", "1", "--n-eig",
                             "4", "--out", in_tmp / "o2")
    assert status == 0 and "cuts hit" in out


def test_history_skips_and_counts_unreadable_lines(tmp_path, monkeypatch, capsys):
    from engineered_latents import history
    from engineered_latents.ui.bench import history_rows

    cache = tmp_path / "cache"
    cache.mkdir()
    good = {"time": "t", "kind": "bench", "benchmark": "demo", "n": 3, "model": "m",
            "metrics": {"text": 50.0}}
    lines = [json.dumps(good).encode(), b"\xff\xfe not utf-8", b"[1, 2, 3]",
             json.dumps({"kind": "cuts", "parameters": "oops"}).encode(), b"{broken",
             json.dumps({"kind": "cuts", "eigenvalues": ["x"]}).encode()]
    (cache / history.FILE).write_bytes(b"\n".join(lines) + b"\n")
    runs, skipped = history.read_counted(str(cache))
    assert skipped == 4 and len(runs) == 2
    assert len(history_rows(runs)) == 1  # the record whose eigenvalues are not numbers is left out
    status, out, err = run_cli(capsys, "history", "--cache-dir", cache)
    assert status == 0
    assert "bench demo n=3: text 50.0" in out and "4 unreadable line(s)" in err


def test_list_aligns_its_columns_for_every_name(capsys):
    status, out, _ = run_cli(capsys, "list")
    assert status == 0
    lines = out.strip().splitlines()
    start = lines[0].index("hub id")
    for line in lines[1:]:  # every hub id starts under its header, however long the name
        assert line[start - 1] == " " and line[start] != " ", line
