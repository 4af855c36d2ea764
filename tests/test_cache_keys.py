"""Image normalisation's version (`data.images.NORMALIZE_VERSION`) is part of every cache key of
an image-derived result: cuts, per-image embeddings and benchmark batches. Bumping it recomputes
them; caption embeddings, which never see an image, stay cached."""

import engineered_latents as el
from engineered_latents import benchmarks
from engineered_latents.data import images
from engineered_latents.features import EncodeSettings, _feature_key
from engineered_latents.models import load_model, resolve_model


def test_image_embedding_keys_carry_the_normalize_version(tiny_clip, monkeypatch):
    lm = load_model(resolve_model(tiny_clip), "cpu", "float32")
    settings = EncodeSettings()
    before = {kind: _feature_key(kind, lm, settings, "item") for kind in ("img", "txt")}
    monkeypatch.setattr(images, "NORMALIZE_VERSION", images.NORMALIZE_VERSION + 1)
    after = {kind: _feature_key(kind, lm, settings, "item") for kind in ("img", "txt")}
    assert after["img"] != before["img"]
    assert after["txt"] == before["txt"]


def test_a_new_normalize_version_recomputes_cuts_and_image_embeddings(tiny_clip, tmp_path,
                                                                      monkeypatch):
    cache = el.Cache(tmp_path / "cache")
    specs = dict(slice_spec=el.SliceSpec(count=2), cut_spec=el.CutSpec(n_eig=6, clusters=3),
                 model_spec=el.ModelSpec(tiny_clip, dtype="float32"), cache=cache)
    first = el.compute_cuts(**specs)
    assert first.cache["cuts"] == "miss"
    assert el.compute_cuts(**specs).cache == {"cuts": "hit"}
    monkeypatch.setattr(images, "NORMALIZE_VERSION", images.NORMALIZE_VERSION + 1)
    bumped = el.compute_cuts(**specs)
    assert bumped.cache == {"cuts": "miss", "image_embeddings_cached": "0/4",
                            "caption_embeddings_cached": "4/4"}


def test_a_new_normalize_version_recomputes_benchmark_batches(tiny_clip, tmp_path, monkeypatch):
    cache = el.Cache(tmp_path / "cache")
    spec = el.ModelSpec(tiny_clip, dtype="float32")
    calls = []
    original = benchmarks._winoground_batch
    monkeypatch.setitem(benchmarks._KINDS, "winoground",
                        (lambda lm, exs, ctx: calls.append(len(exs)) or original(lm, exs, ctx),
                         benchmarks._winoground_summary))

    def run():
        return list(benchmarks.run_benchmark("demo", spec, cache=cache, batch_size=12,
                                             n_bootstrap=10))[-1]

    assert not run().from_cache and calls == [12, 12]
    assert run().from_cache and calls == [12, 12]
    monkeypatch.setattr(images, "NORMALIZE_VERSION", images.NORMALIZE_VERSION + 1)
    assert not run().from_cache and calls == [12, 12, 12, 12]  # every batch again
