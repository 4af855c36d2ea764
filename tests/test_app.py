"""The app through its API: gradio_client against a server launched in-process (tiny model)."""

import json

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from plotly_helpers import array as _array
from plotly_helpers import figure

from engineered_latents.ui import views as V

# /cut's outputs, in order (gr.State is not part of the API)
CUT_OUTPUTS = ["note", "status", "banner", "gallery", "pair", "word", "eig", "overlay", "rgb",
               "words", "affinity", "spectrum", "clusters", "top_words", "cluster_table", "timings"]
PAIR_OUTPUTS = ["word", "overlay", "rgb", "words", "affinity"]
FIGURES = ["overlay", "rgb", "words", "affinity", "spectrum", "clusters"]


@pytest.fixture(scope="module")
def server(app_server):
    return app_server


@pytest.fixture
def client(server):
    """A new browser-like session (its own gr.State)."""
    return Client(server[1], verbose=False, download_files=False)


def _named(result, names):
    assert len(result) == len(names)
    return dict(zip(names, result))


def _figure(output):
    assert output["type"] == "plotly"
    return figure(output)


def _z(output, trace=0):
    return _array(_figure(output).data[trace].z).astype(float)


def test_api_documents_cut_and_pair_with_defaults(client):
    api = client.view_api(return_format="dict", print_info=False)
    named = api["named_endpoints"]
    assert {"/cut", "/pair"} <= set(named)
    params = named["/cut"]["parameters"]
    assert all(p["parameter_has_default"] for p in params)
    defaults = {p["parameter_name"]: p["parameter_default"] for p in params}
    assert defaults["dataset"] == "demo" and defaults["count"] == 8 and defaults["mode"] == "scalar"


def test_default_view(client, server):
    out = _named(client.predict(api_name="/cut"), CUT_OUTPUTS)
    for name in FIGURES:
        fig = _figure(out[name])
        assert fig.data, name
    assert "demo 0..7: 16 pairs" in out["status"]
    assert "real weights" in out["status"] and out["banner"] == ""
    assert len(out["gallery"]) == 16
    assert out["gallery"][1]["caption"].startswith("1: #0 image 1: ")
    assert [c[1] for c in out["pair"]["choices"]] == list(range(16))
    assert out["word"]["choices"][0] == ["all words", -1]
    assert out["eig"]["maximum"] == 19
    assert _z(out["words"]).shape[1] == 19  # eigenvectors 1..19: the trivial one hidden
    assert out["top_words"]["headers"] == V.TOP_WORDS_HEADERS
    assert len(out["top_words"]["data"]) == 19
    assert out["cluster_table"]["headers"] == V.CLUSTER_HEADERS
    assert sum(row[1] for row in out["cluster_table"]["data"]) == 5880
    # the default view was cut at start-up: the request is answered from memory/cache
    assert "from the cache" in out["timings"] or "| ncut |" not in out["timings"]
    assert server[0].explorer.startup.get("default_view_s") is not None


def test_cut_another_slice_updates_figures(client):
    default = _named(client.predict(api_name="/cut"), CUT_OUTPUTS)
    other = _named(client.predict(start=5, count=3, mode="joint", n_eig=12, clusters=4,
                                  api_name="/cut"), CUT_OUTPUTS)
    assert "demo 5..7: 6 pairs" in other["status"] and "joint" in other["status"]
    assert len(other["gallery"]) == 6
    assert other["gallery"][0]["caption"] != default["gallery"][0]["caption"]
    assert _z(other["words"]).shape[1] == 11
    assert len(_array(_figure(other["spectrum"]).data[0].y)) == 12
    assert len(_array(_figure(other["clusters"]).data[0].y)) == 4
    assert not np.array_equal(_z(other["affinity"]), _z(default["affinity"]))
    by_indices = _named(client.predict(indices="2, 9", api_name="/cut"), CUT_OUTPUTS)
    assert "indices 2, 9: 4 pairs" in by_indices["status"]


@pytest.mark.parametrize("bad, message", [
    (dict(start=100), "outside the dataset"),
    (dict(count=0), "less than minimum"),  # Gradio's own bound check
    (dict(indices="3, x"), "not an index"),
    (dict(n_eig=4, clusters=6), "clusters"),
    (dict(model="../secret"), "EL_MODEL_DIRS"),
    (dict(model="/etc"), "EL_MODEL_DIRS"),
    (dict(dataset="nope"), "not one of the choices"),
])
def test_user_errors_are_messages_and_the_app_stays_up(client, bad, message):
    with pytest.raises(AppError, match=message):
        client.predict(**bad, api_name="/cut")
    out = _named(client.predict(start=1, count=2, api_name="/cut"), CUT_OUTPUTS)
    assert "demo 1..2: 4 pairs" in out["status"]


def test_pick_pair_and_word_without_new_cut(client, monkeypatch):
    first = _named(client.predict(start=2, count=3, api_name="/cut"), CUT_OUTPUTS)
    calls = []
    real = V.compute_cuts
    monkeypatch.setattr(V, "compute_cuts", lambda *a, **k: calls.append(a) or real(*a, **k))

    pair3 = _named(client.predict(3, api_name="/pair"), PAIR_OUTPUTS)
    words = [c[0] for c in pair3["word"]["choices"][1:]]
    assert words == first["gallery"][3]["caption"].split(": ", 2)[2].split()
    assert not np.array_equal(_z(pair3["affinity"]), _z(first["affinity"]))
    assert [t for t in _figure(pair3["words"]).layout.yaxis.ticktext] == words

    # a word and an eigenvector on pair 3: its own patch map
    overlay = _figure(client.predict(3, 1, 2, "eigenvector", api_name="/overlay"))
    assert f"“{words[1]}” on eigenvector 2" in overlay.layout.title.text
    raw = _figure(client.predict(3, 1, 2, "raw affinity", api_name="/overlay"))
    assert not np.array_equal(_array(raw.data[1].z), _array(overlay.data[1].z))
    # BPE pieces and eigenvector 0 on request
    eig, _, _, word_fig = client.predict(3, 1, 2, "eigenvector", True, True, api_name="/words")
    assert eig["minimum"] == 0
    assert list(_figure(word_fig).layout.xaxis.ticktext)[0] == "0"
    assert calls == []  # nothing was cut again


def test_sessions_keep_their_own_run(server):
    a = Client(server[1], verbose=False, download_files=False)
    b = Client(server[1], verbose=False, download_files=False)
    a.predict(start=10, count=2, api_name="/cut")
    b.predict(start=20, count=2, api_name="/cut")
    a_words = a.predict(0, api_name="/pair")[0]["choices"]
    b_words = b.predict(0, api_name="/pair")[0]["choices"]
    assert a_words != b_words
    with pytest.raises(AppError, match="pairs 0..3"):
        a.predict(7, api_name="/pair")
    fresh = Client(server[1], verbose=False, download_files=False)  # no run yet: the default
    assert fresh.predict(0, api_name="/pair")[0]["choices"] == json.loads(
        json.dumps(a.predict(api_name="/cut")[CUT_OUTPUTS.index("word")]["choices"]))


def test_upload_own_images_with_html_captions(client, tmp_path):
    """The user's images through the upload adapter; captions with HTML are shown as text."""
    from gradio_client import handle_file

    from engineered_latents.data.demo import DemoDataset

    paths = []
    for k, image in enumerate(DemoDataset().load([3])[0].images):
        paths.append(tmp_path / f"mine {k}.png")
        image.save(paths[-1])
    captions = "a <b>bold</b> claim\ncats & <a href='x'>dogs</a>"
    out = _named(client.predict(dataset="upload", files=[handle_file(str(p)) for p in paths],
                                captions=captions, api_name="/cut"), CUT_OUTPUTS)
    assert "upload 0..1: 2 pairs" in out["status"]
    assert out["gallery"][0]["caption"] == "0: #0: a <b>bold</b> claim"  # Gradio shows text
    for name in FIGURES:
        dumped = json.dumps(json.loads(out[name]["plot"]))
        assert "<b>bold" not in dumped and "<a href" not in dumped, name
    words = _figure(out["words"]).layout.yaxis.ticktext
    assert "&lt;" in words and not any("<" in w for w in words)
    pair1 = _named(client.predict(1, api_name="/pair"), PAIR_OUTPUTS)
    assert "&amp;" in _figure(pair1["affinity"]).layout.title.text
    with pytest.raises(AppError, match="2 images but 1 captions"):
        client.predict(dataset="upload", files=[handle_file(str(p)) for p in paths],
                       captions="only one", api_name="/cut")
