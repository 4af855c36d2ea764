"""Shared fixtures: no network, a throwaway cache, and tiny CLIP models saved to disk."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never touch the network
# float32 encoders for an auto dtype whatever the CPU, also for module- and session-scoped app
# servers that start before the per-test fixture below (their keys must match the tests')
os.environ["EL_CPU_BF16"] = "0"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one compute thread per test worker: the workers already fill the cores, and OpenMP
    # threads spinning on a busy core cost more than they compute (tiny models)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # float32 encoders for an auto dtype whatever the CPU (its oracles are float32); the bf16
    # tests set EL_CPU_BF16 themselves
    monkeypatch.setenv("EL_CPU_BF16", "0")


def save_tiny_clip(path, image_size=224, patch_size=32, seed=0):
    """A 2-layer CLIP with the real tokenizer, saved like a Hub checkpoint (save_pretrained)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    from engineered_latents.models import clip_tokenizer_from_vocab

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(small, vocab_size=49408, max_position_embeddings=77),
        vision_config=dict(small, image_size=image_size, patch_size=patch_size),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(path)
    clip_tokenizer_from_vocab().save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": image_size},
                          crop_size={"height": image_size, "width": image_size}
                          ).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """A tiny CLIP on B/32's grid: 224 px, 32 px patches -> 7 x 7."""
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_clip_small_grid(tmp_path_factory):
    """A tiny CLIP with another grid: 64 px, 16 px patches -> 4 x 4."""
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip_64"), image_size=64, patch_size=16,
                          seed=1)


@pytest.fixture(scope="session")
def tiny_siglip(tmp_path_factory):
    """A tiny random SigLIP (4 x 4 grid, 64 text positions) and its SentencePiece tokenizer
    (tests/siglip_fixtures.py), saved like a Hub checkpoint."""
    from siglip_fixtures import save_tiny_siglip

    return save_tiny_siglip(tmp_path_factory.mktemp("tiny_siglip"))


@pytest.fixture(scope="session")
def app_server(tiny_clip, tmp_path_factory):
    """(demo, url): one app server on the tiny CLIP with the default settings, shared by every
    test module that needs no settings of its own (starting one costs several seconds)."""
    from engineered_latents.ui.testing import serve

    with serve(tiny_clip, tmp_path_factory.mktemp("shared_app")) as (demo, url):
        yield demo, url


CHROMIUM = os.environ.get("EL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by PyPI's playwright (Playwright's own browser download
    cannot work offline): launched once for every browser test. Missing installs FAIL with the
    install lines; EL_SKIP_BROWSER=1 skips for a quick local run."""
    if os.environ.get("EL_SKIP_BROWSER") == "1":
        pytest.skip("EL_SKIP_BROWSER=1")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The browser test needs playwright: pip install playwright", pytrace=False)
    if not os.path.isfile(CHROMIUM):
        pytest.fail(f"The browser test needs Chromium at {CHROMIUM}: apt-get update && "
                    "apt-get install -y chromium (or set EL_CHROMIUM; EL_SKIP_BROWSER=1 skips)",
                    pytrace=False)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        yield launched
        launched.close()


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`-n 3 --dist loadgroup`, the README's command) the browser tests run
    on one worker and the other tests of the shared app server on another, so each session
    fixture starts at most twice; every other module runs whole on one worker, so its module
    fixtures are built once and no test depends on where its neighbours ran."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if "browser" in used:
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif "app_server" in used:
            item.add_marker(pytest.mark.xdist_group("app"))
        else:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
