"""Many users at once: 10 gradio_client sessions start different cuts at the same moment on one
in-process server (demo dataset, tiny model). Every session gets an answer, and its own: each
result equals the library's `compute_cuts` for that session's slice, recomputed from scratch in
a fresh cache (so the cuts are deterministic too, although ncut-pytorch draws from numpy's
global RNG), and the model is loaded once for all of them."""

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import plotly.io as pio
import pytest
from gradio_client import Client

import engineered_latents as el
from engineered_latents import models
from engineered_latents.ui.testing import serve

CUT_OUTPUTS = ["note", "status", "banner", "gallery", "pair", "word", "eig", "overlay", "rgb",
               "words", "affinity", "spectrum", "clusters", "top_words", "cluster_table", "timings"]
PAIR_OUTPUTS = ["word", "overlay", "rgb", "words", "affinity"]
SESSIONS = 10


def _array(value) -> np.ndarray:
    if isinstance(value, dict) and "bdata" in value:
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), value["dtype"]).reshape(shape)
    return np.asarray(value)


def _spec(i: int) -> dict:
    """Session i's controls: its own start, count 1 or 2, both graph modes, two seeds."""
    return dict(start=2 * i + 3, count=1 + i % 2, mode="joint" if i % 3 == 0 else "scalar",
                n_eig=5 + i % 3, clusters=3, seed=i % 2)


@pytest.mark.slow
def test_ten_sessions_at_once_each_get_their_own_deterministic_results(tiny_clip, tmp_path):
    with serve(tiny_clip, tmp_path / "app", warm_up=False) as (demo, url):
        models._load_cached.cache_clear()  # count the loads of these 10 runs only
        barrier = threading.Barrier(SESSIONS)

        def session(i: int):
            client = Client(url, verbose=False, download_files=False)
            barrier.wait(60)  # every session asks at the same moment
            started = time.perf_counter()
            out = dict(zip(CUT_OUTPUTS, client.predict(api_name="/cut", **_spec(i))))
            seconds = time.perf_counter() - started
            # after everyone's cut: this session's state still names its own run
            pair = dict(zip(PAIR_OUTPUTS, client.predict(0, api_name="/pair")))
            return out, pair, seconds

        with ThreadPoolExecutor(SESSIONS) as pool:
            results = list(pool.map(session, range(SESSIONS)))
        loads = models._load_cached.cache_info()
        assert loads.misses == 1, loads  # the model was loaded once for the 10 sessions
        assert max(r[2] for r in results) < 120

    cache = el.Cache(tmp_path / "library_cache")  # a fresh cache: everything recomputed
    for i, (out, pair, _) in enumerate(results):
        spec = _spec(i)
        run = el.compute_cuts(
            el.SliceSpec("demo", spec["start"], spec["count"]),
            el.CutSpec(mode=spec["mode"], n_eig=spec["n_eig"], clusters=3, seed=spec["seed"]),
            el.ModelSpec(tiny_clip), cache=cache)
        assert run.cache["cuts"] == "miss" and run.cache["image_embeddings_cached"][0] == "0"
        last = spec["start"] + spec["count"] - 1
        assert f"demo {spec['start']}..{last}: {len(run.pairs)} pairs" in out["status"], i
        assert f"{spec['mode']}, {spec['n_eig']} eigenvectors" in out["status"], i
        captions = [g["caption"].split(": ", 2)[2] for g in out["gallery"]]
        assert captions == [p.caption for p in run.pairs], i
        eigval = _array(pio.from_json(out["spectrum"]["plot"]).data[0].y)
        np.testing.assert_allclose(eigval, run.result.eigval, rtol=0, atol=1e-6)
        # pair 0's per-word scores (eigenvectors 1..), from the cut and from /pair afterwards
        expected = run.word_level_scores(0)[:, 1:]
        for figure in (out["words"], pair["words"]):
            z = _array(pio.from_json(figure["plot"]).data[0].z).astype(float)
            np.testing.assert_allclose(z, expected, rtol=0, atol=1e-5)
        assert [c[0] for c in pair["word"]["choices"][1:]] == run.pairs[0].words, i
        sizes = [row[1] for row in out["cluster_table"]["data"]]
        assert sizes == run.cluster_sizes(), i
