"""Part 2 of the app through its API (gradio_client, tiny model): the loss and benchmark tabs,
deep links, downloads, the run history, what is served, and HF_TOKEN kept out of answers."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from plotly_helpers import array as _array
from plotly_helpers import figure as _figure

from engineered_latents import landscape, losses
from engineered_latents.__main__ import main
from engineered_latents.ui.bench import BENCH_HEADERS

ROOT = Path(__file__).resolve().parent.parent
CUT_OUTPUTS = ["note", "status", "banner", "gallery", "pair", "word", "eig", "overlay", "rgb",
               "words", "affinity", "spectrum", "clusters", "top_words", "cluster_table", "timings"]
# /load: the restored controls, then /cut's outputs, then the "run pending" flag
RESTORED = ["dataset", "start", "count", "indices", "model", "mode", "n_eig", "sharpness",
            "clusters", "seed", "special", "patch_norm", "crossed", "all_captions", "overlay",
            "bpe", "show0", "layer", "rgb", "colour", "perplexity"]
LOSS_OUTPUTS = ["k", "note", "surface", "contour", "k_plot", "noise"]


@pytest.fixture(scope="module")
def server(app_server):
    return app_server


def _client(server, **params):
    kwargs = {"httpx_kwargs": {"params": params}} if params else {}
    return Client(server[1], verbose=False, download_files=False, **kwargs)




def _fetch(url: str) -> bytes:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, (url, response.status_code)
    return response.content


# ----------------------------------------------------------------------------- benchmarks


@pytest.mark.slow
def test_benchmark_streams_and_ends_with_the_clis_numbers(server, tiny_clip, tmp_path):
    client = _client(server)
    job = client.submit(["demo"], 16, "default", 4, api_name="/benchmark")
    for _ in job:  # every batch's table, as it arrives
        pass
    updates = job.outputs()
    assert len(updates) == 4, "a partial result after every batch of 4"
    tables = [dict(zip(BENCH_HEADERS, zip(*u[1]["data"]))) for u in updates]
    assert [t["status"][0] for t in tables] == ["running 4/16", "running 8/16",
                                                "running 12/16", "done"]
    for t in tables:  # every live number comes with its interval
        assert all(lo <= v <= hi for lo, v, hi in zip(t["95% CI low"], t["value"],
                                                       t["95% CI high"]))
    final = tables[-1]
    assert final["metric"] == ("text", "image", "group") and set(final["n"]) == {16}
    chart = _figure(updates[-1][2])
    assert list(_array(chart.data[0].y)) == list(final["value"])

    # the CLI on the same slice, with its own cache (the test's, not the server's)
    out = tmp_path / "cli.json"
    assert main(["bench", "--benchmark", "demo", "--limit", "16", "--model", tiny_clip,
                 "--json", str(out)]) == 0
    cli = json.loads(out.read_text())
    assert dict(zip(final["metric"], final["value"])) == cli["metrics"]
    assert {m: [lo, hi] for m, lo, hi in zip(final["metric"], final["95% CI low"],
                                             final["95% CI high"])} == cli["ci95"]
    # the download is the CLI's JSON contract with the same numbers
    files = client.predict(api_name="/bench_export")
    exported = json.loads(_fetch(files[0]["url"]))
    for key in ("benchmark", "n", "metrics", "ci95", "reference", "demo_weights"):
        assert exported[key] == cli[key], key
    assert np.allclose([e["scores"] for e in exported["examples"]],
                       [e["scores"] for e in cli["examples"]], atol=1e-6)
    assert tiny_clip not in json.dumps(exported)  # no server path in a download
    assert b"Plotly.newPlot" in _fetch(files[1]["url"])

    # a finished run is cached: running it again answers at once, in one update
    again = client.submit(["demo"], 16, "default", 4, api_name="/benchmark")
    again.result()
    assert len(again.outputs()) == 1
    assert again.outputs()[0][1]["data"][0][-1] == "from cache"


def test_benchmark_errors_are_messages(server):
    client = _client(server)
    with pytest.raises(AppError, match="Pick at least one"):
        client.predict([], api_name="/benchmark")
    with pytest.raises(AppError, match="EL_MODEL_DIRS"):
        client.predict(["demo"], 4, "/etc", api_name="/benchmark")
    with pytest.raises(AppError, match="less than minimum"):  # Gradio's own bound check
        client.predict(["demo"], 4, "default", 0, api_name="/benchmark")


# ----------------------------------------------------------------------------- loss surfaces


def test_loss_tab_follows_k_and_ranges(server):
    client = _client(server)
    client.predict(start=0, count=3, n_eig=10, clusters=4, api_name="/cut")
    first = dict(zip(LOSS_OUTPUTS, client.predict(2, 0, 2, 5, 0, 1, 3, 2, api_name="/loss")))
    assert first["k"]["maximum"] == 9  # n_eig - 1 (the tiny model's embeddings have 16 dims)
    plane = _figure(first["contour"])
    assert np.allclose(_array(plane.data[0].y), np.linspace(0, 2, 5))  # alpha
    assert np.allclose(_array(plane.data[0].x), np.linspace(0, 1, 3))  # beta
    run = [v for v in server[0].explorer._runs._items.values()
           if v.run.slice.count == 3 and v.run.cut.n_eig == 10][0].run
    planes = landscape.weight_planes(run, 2, np.linspace(0, 2, 5), np.linspace(0, 1, 3))
    svd_z, cluster_z = _array(plane.data[0].z), _array(plane.data[2].z)
    assert np.allclose(svd_z, planes["svd_surface"], atol=1e-5)
    assert np.allclose(cluster_z, planes["cluster_surface"], atol=1e-5)
    # the terms plot shows the two terms per k; at the chosen k they rebuild the plane exactly
    # (the loss is linear in alpha and beta: -a*gap - b*magnitude, -a*eigengap + b*sum)
    terms = _figure(first["surface"])
    gap, mag, eigengap, total = (_array(t.y) for t in terms.data[:4])
    assert np.allclose(_array(terms.data[0].x), planes["ks"])
    i = list(planes["ks"]).index(2)
    a, b = np.linspace(0, 2, 5)[:, None], np.linspace(0, 1, 3)[None, :]
    assert np.allclose(svd_z, -a * gap[i] - b * mag[i], atol=1e-5)
    assert np.allclose(cluster_z, -a * eigengap[i] + b * total[i], atol=1e-5)
    assert 2 in {s.x0 for s in terms.layout.shapes}  # the chosen k is marked
    assert "plane" in first["note"] and "corner" in first["note"]

    other_k = dict(zip(LOSS_OUTPUTS, client.predict(3, 0, 2, 5, 0, 1, 3, 2, api_name="/loss")))
    assert not np.allclose(_array(_figure(other_k["contour"]).data[0].z), svd_z)
    assert "k = 3" in other_k["note"]
    k_plot = _figure(other_k["k_plot"])
    assert 3 in {s.x0 for s in k_plot.layout.shapes}  # the chosen k is marked
    ranges = dict(zip(LOSS_OUTPUTS, client.predict(3, 0.5, 1, 4, 0, 3, 7, 2, api_name="/loss")))
    contour = _figure(ranges["contour"])
    assert np.allclose(_array(contour.data[0].y), np.linspace(0.5, 1, 4))
    assert np.allclose(_array(contour.data[0].x), np.linspace(0, 3, 7))
    # a new session is on the default view (n_eig 20): k is held below the embeddings' 16 dims
    clamped = _client(server).predict(19, api_name="/loss")
    assert clamped[0] == {"maximum": 15, "value": 15, "__type__": "update"}
    with pytest.raises(AppError, match="'from' must be below 'to'"):
        client.predict(2, 2, 1, api_name="/loss")

    note, figure = client.predict(2, 3, 5, 0.5, 200, 1, True, api_name="/landscape")
    assert "5 x 5" in note and "3 x 3" in note
    fig = _figure(figure)
    cka = _array(fig.data[0].z)
    assert cka.shape == (5, 5) and _array(fig.data[4].z).shape == (3, 3)
    X, Y = landscape.paired_features(landscape.node_features(run))
    assert cka[2, 2] == pytest.approx(losses.cka_loss(X, Y), abs=1e-4)  # centre: as it is

    files = client.predict(3, 0.5, 1, 4, 0, 3, 7, 2, api_name="/loss_export")
    arrays = np.load(_download(files[0]))
    assert np.allclose(arrays["svd_surface"], _array(contour.data[0].z), atol=1e-5)
    assert arrays["landscape_cka"].shape == (5, 5)
    assert b"Plotly.newPlot" in _fetch(files[1]["url"])


def _download(file: dict):
    import io

    return io.BytesIO(_fetch(file["url"]))


# ----------------------------------------------------------------------------- deep links


def test_query_parameters_restore_the_explore_tab(server):
    direct = dict(zip(CUT_OUTPUTS, _client(server).predict(
        start=5, count=2, mode="joint", n_eig=12, clusters=4, api_name="/cut")))
    link = {"start": "5", "count": "2", "mode": "joint", "n_eig": "12", "clusters": "4",
            "pair": "2", "eig": "3", "bpe": "1", "overlay": "raw affinity"}
    loaded = _client(server, **link).predict(api_name="/load")
    controls = dict(zip(RESTORED, loaded[:len(RESTORED)]))
    view = dict(zip(CUT_OUTPUTS, loaded[len(RESTORED):-1]))
    assert loaded[-1] is False  # the run was in memory: shown at once, no Run needed
    assert (controls["start"], controls["count"], controls["mode"], controls["n_eig"],
            controls["clusters"], controls["bpe"], controls["overlay"]) == \
        (5, 2, "joint", 12, 4, True, "raw affinity")
    assert view["status"] == direct["status"] and "demo 5..6: 4 pairs" in view["status"]
    assert view["pair"]["value"] == 2 and view["eig"]["value"] == 3
    assert "raw affinity" in _figure(view["overlay"]).layout.title.text
    assert np.array_equal(_array(_figure(view["spectrum"]).data[0].y),
                          _array(_figure(direct["spectrum"]).data[0].y))

    # the Copy link button builds the same query from the controls
    client = _client(server)
    query = client.predict("demo", 5, 2, "", "default", "joint", 12, 0, 4, 0, False, True,
                           False, False, 2, 3, None, "raw affinity", True, False, -1,
                           "1, 2, 3", "rgb", 30,
                           api_name="/link")  # the Layer slider (-1: last), the colouring
    assert query == "?start=5&count=2&mode=joint&n_eig=12&clusters=4&pair=2&eig=3" \
                    "&overlay=raw+affinity&bpe=1"

    # a view not in memory: the controls are set and Run is pressed (here: by us)
    pending_client = _client(server, start="9", count="1", pair="1")
    loaded = pending_client.predict(api_name="/load")
    assert loaded[-1] is True
    assert dict(zip(RESTORED, loaded))["start"] == 9
    assert loaded[len(RESTORED)] == "Opening the linked view…"
    ran = dict(zip(CUT_OUTPUTS, pending_client.predict(start=9, count=1, api_name="/cut")))
    assert "demo 9..9: 2 pairs" in ran["status"] and ran["pair"]["value"] == 1

    # a broken link shows the default view
    broken = _client(server, start="x").predict(api_name="/load")
    assert broken[-1] is False and "demo 0..7: 16 pairs" in broken[len(RESTORED) + 1]
    # markup, values of no list and numbers past 64 bits keep their defaults; the page answers
    markup = '<a href="https://evil.example/login">Session expired</a>'
    for params in ({"dataset": markup}, {"mode": "<b>x</b>"}, {"seed": str(2**64)},
                   {"start": str(2**64)}, {"overlay": markup}):
        loaded = _client(server, **params).predict(api_name="/load")
        controls = dict(zip(RESTORED, loaded[:len(RESTORED)]))
        assert (controls["dataset"], controls["mode"], controls["seed"]) == ("demo", "scalar", 0)
        assert "demo 0..7: 16 pairs" in loaded[len(RESTORED) + 1], params


# ----------------------------------------------------------------------------- downloads


def test_downloads_contain_the_view(server, tiny_clip):
    client = _client(server)
    out = dict(zip(CUT_OUTPUTS, client.predict(start=2, count=3, n_eig=8, clusters=4,
                                               api_name="/cut")))
    files = client.predict(1, -1, 2, "eigenvector", False, False, api_name="/export")
    assert [f["orig_name"] for f in files] == ["cuts.npz", "summary.json", "figures.html"]
    arrays = np.load(_download(files[0]))
    summary = json.loads(_fetch(files[1]["url"]))
    html = _fetch(files[2]["url"]).decode()

    spectrum = _array(_figure(out["spectrum"]).data[0].y)
    assert np.allclose(arrays["eigenvalues"], spectrum) and len(spectrum) == 8
    assert np.allclose(summary["eigenvalues"], spectrum, atol=1e-6)
    assert arrays["eigenvectors"].shape == (summary["n_nodes"], 8)
    assert f"{summary['n_nodes']} nodes" in out["status"]
    words = _array(_figure(out["words"]).data[0].z)  # pair 0, eigenvectors 1..7
    assert np.allclose(np.array(summary["pairs"][0]["word_level_scores"])[:, 1:], words,
                       atol=1e-5)
    tokens = len(summary["pairs"][0]["tokens"])
    assert np.allclose(arrays["word_scores"][0, :tokens], summary["pairs"][0]["word_scores"],
                       atol=1e-5)
    assert [p["caption"] for p in summary["pairs"]] == \
        [g["caption"].split(": ", 2)[2] for g in out["gallery"]]
    assert tiny_clip not in json.dumps(summary)  # the local model by name only
    assert summary["model"] == os.path.basename(tiny_clip)
    # figures.html: every view, pair 1 and eigenvector 2 as asked, plotly.js inlined
    assert html.count("Plotly.newPlot") == 6 and "<script src=" not in html
    pair1 = client.predict(1, api_name="/pair")
    assert _figure(pair1[3]).layout.title.text.split("<br>")[1] in html


# ----------------------------------------------------------------------------- serving


def test_only_assets_exports_and_gradio_temp_are_served(server, tiny_clip):
    demo, url = server
    base = url.rstrip("/") + "/gradio_api/file="
    assets = ROOT / "engineered_latents" / "assets" / "imagenet_openai.json"
    assert httpx.get(base + str(assets)).status_code == 200
    cache_dir = Path(demo.explorer.cache.directory)
    secret_files = [ROOT / "README.md", ROOT / "app.py", Path(tiny_clip) / "config.json",
                    next(cache_dir.glob("*.db")), cache_dir / "history.jsonl"]
    for path in secret_files:
        assert path.is_file(), path
        assert httpx.get(base + str(path)).status_code == 403, path
    assert demo._queue.max_size >= 16


def test_hf_token_never_shows(server, monkeypatch):
    secret = "hf_NotARealTokenButLongEnough123"
    monkeypatch.setenv("HF_TOKEN", secret)
    client = _client(server)
    with pytest.raises(AppError) as caught:
        client.predict(model=secret, api_name="/cut")  # echoed back in the error message
    assert secret not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(AppError) as caught:
        client.predict(["demo"], 0, secret, api_name="/benchmark")
    assert secret not in str(caught.value)
    config = httpx.get(server[1].rstrip("/") + "/config").text
    assert secret not in config


# ----------------------------------------------------------------------------- history


def test_history_lists_runs_and_restores_them(server):
    demo = server[0]
    _client(server).predict(start=1, count=2, mode="joint", api_name="/cut")
    _client(server).predict(["demo"], 8, "default", 8, api_name="/benchmark")
    bench = demo.parts["bench"]
    rows, records = bench.on_history()
    kinds = [r[1] for r in rows]
    assert "bench" in kinds and "cuts" in kinds
    assert rows[0][1] == "bench" and rows[0][3] == "demo n=8 (limit 8)"  # newest first
    restored = bench.on_history_pick(records, SimpleNamespace(index=[0, 3]))
    assert restored[:4] == (["demo"], 8, "default", True)  # then Run is pressed in the page
    cuts_row = next(i for i, r in enumerate(records) if r["kind"] == "cuts"
                    and r["parameters"]["slice"]["start"] == 1)
    restored = bench.on_history_pick(records, SimpleNamespace(index=[cuts_row, 0]))
    explore = demo.parts["explore"]
    controls = dict(zip(RESTORED, restored[8:]))
    assert (controls["start"], controls["count"], controls["mode"]) == (1, 2, "joint")
    assert restored[6] is True and restored[5].selected == "explore"
    assert len(restored) == 8 + len(explore.restore_outputs)


def test_a_training_run_in_the_history_reads_as_one_and_opens_the_train_tab(server):
    from engineered_latents.ui.bench import history_rows

    record = {"time": "2026-12-01T10:00:00", "kind": "train", "model": "/srv/models/base",
              "out": "/srv/cache/models/my-run", "dataset": "demo", "loss": "contrastive",
              "train": "full", "steps_done": 20, "best_step": 20,
              "val": {"val_loss": 2.08, "r1_i2t": 31.25}}
    (row,) = history_rows([record])
    assert row[1] == "train" and row[2] == "base"  # the folder's name, not the server path
    assert row[3] == "run my-run: contrastive on demo, full, 20 steps"
    assert row[4] == "val_loss 2.08, r1_i2t 31.2"
    restored = server[0].parts["bench"].on_history_pick([record], SimpleNamespace(index=[0, 0]))
    assert "my-run" in restored[4] and "Train tab" in restored[4]
    assert restored[5].selected == "train"
    # the Train tab follows the same click: its restore for a train row, nothing for others
    train = server[0].parts["train"]
    shown = train.on_history_pick([record], SimpleNamespace(index=[0, 0]))
    assert "no training run named 'my-run'" in shown[2]  # this server never trained it
    cuts = {"kind": "cuts", "parameters": {}}
    untouched = train.on_history_pick([cuts], SimpleNamespace(index=[0, 0]))
    assert all(isinstance(v, type(untouched[0])) for v in untouched)
