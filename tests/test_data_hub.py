"""Hub behaviour without a network: error messages, offline detection, pinned revisions, cache."""

import httpx2
import pytest
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from engineered_latents.data import get_dataset, hub
from engineered_latents.errors import UserError
from tests.fixtures_data import write_winoground

REPO = "facebook/winoground"


def _http(cls, status, message="error"):
    request = httpx2.Request("GET", f"https://huggingface.co/api/datasets/{REPO}")
    return cls(message, response=httpx2.Response(status, request=request))


@pytest.fixture
def online(monkeypatch):
    """Pretend the Hub is reachable; every network function must then be patched by the test."""
    monkeypatch.setattr(hub, "offline", lambda: False)
    monkeypatch.setattr(hub, "_REVISIONS", {})


@pytest.fixture
def wino_root(tmp_path):
    write_winoground(tmp_path, n=4)
    return tmp_path


def test_no_network_and_nothing_cached(monkeypatch):
    monkeypatch.setattr(hub, "_REVISIONS", {})
    assert hub.offline()  # HF_HUB_OFFLINE=1 in tests: decided without touching the network
    for call in (lambda ds: ds.load([0]), lambda ds: ds.identity()):
        with pytest.raises(UserError) as info:
            call(get_dataset("winoground"))
        message = str(info.value)
        assert "'winoground'" in message and "network" in message and "--data-path" in message
    with pytest.raises(UserError, match="'coco'.*--data-path"):
        get_dataset("coco").load([0])


@pytest.mark.parametrize("status, expected", [
    (401, "no Hugging Face token was sent"),
    (403, "has not been granted access"),
])
def test_gated_messages(online, monkeypatch, status, expected):
    def refuse(repo_id):
        raise _http(GatedRepoError, status, "Cannot access gated repo")

    monkeypatch.setattr(hub, "fetch_revision", refuse)
    with pytest.raises(UserError) as info:
        get_dataset("winoground").load([0])
    message = str(info.value)
    assert expected in message and "gated" in message and "HF_TOKEN" in message
    assert "accept the terms" in message and f"https://huggingface.co/datasets/{REPO}" in message


def test_gated_while_streaming(online, monkeypatch):
    """`datasets` wraps the Hub's GatedRepoError in its own DatasetNotFoundError."""
    from datasets.exceptions import DatasetNotFoundError

    def refuse(*args, **kwargs):
        try:
            raise _http(GatedRepoError, 401)
        except GatedRepoError as e:
            raise DatasetNotFoundError(f"Dataset '{REPO}' is a gated dataset on the Hub. You must "
                                       "be authenticated to access it.") from e

    monkeypatch.setattr(hub, "fetch_revision", lambda repo_id: "abc123")
    monkeypatch.setattr(hub, "open_split", refuse)
    with pytest.raises(UserError, match="gated.*no Hugging Face token.*HF_TOKEN"):
        get_dataset("winoground").load([0])


@pytest.mark.parametrize("error, expected", [
    (_http(RepositoryNotFoundError, 404), "not found on the Hugging Face Hub \\(404\\)"),
    (_http(HfHubHTTPError, 429), "rate-limiting"),
    (_http(HfHubHTTPError, 503), "server error \\(503\\)"),
    (_http(HfHubHTTPError, 401), "refused access"),
    (OfflineModeIsEnabled("offline"), "cannot be reached"),
    (ConnectionError("Couldn't reach 'x' on the Hub"), "cannot be reached"),
])
def test_hub_error_messages(online, monkeypatch, error, expected):
    def fail(repo_id):
        raise error

    monkeypatch.setattr(hub, "fetch_revision", fail)
    with pytest.raises(UserError, match=expected):
        get_dataset("winoground").identity()


def test_other_errors_are_not_disguised():
    assert hub.hub_error(KeyError("x"), "winoground", REPO) is None


def test_streamed_once_then_offline_from_cache(online, monkeypatch, wino_root):
    """The first run pins the revision and caches the examples; offline, both come back."""
    revisions, reads = [], []
    original = hub.open_split

    def fake_hub(source, split, revision=None):
        assert source == REPO and revision == "abc123"
        reads.append(split)
        return original(str(wino_root), split)

    monkeypatch.setattr(hub, "fetch_revision", lambda repo_id: revisions.append(1) or "abc123")
    monkeypatch.setattr(hub, "open_split", fake_hub)
    ds = get_dataset("winoground")
    assert ds.identity() == f"{REPO}@abc123" and ds.size() == 400  # known, not downloaded
    first = ds.load([0, 2])
    assert len(reads) == 1 and len(revisions) == 1

    monkeypatch.setattr(hub, "offline", lambda: True)
    monkeypatch.setattr(hub, "_REVISIONS", {})  # a new process
    monkeypatch.setattr(hub, "fetch_revision", lambda repo_id: pytest.fail("network used"))
    again = get_dataset("winoground")
    assert again.identity() == f"{REPO}@abc123"  # the pinned revision, from the cache
    examples = again.load([2, 0])
    assert [ex.captions for ex in examples] == [first[1].captions, first[0].captions]
    assert len(reads) == 1
    with pytest.raises(UserError, match="cannot be reached"):
        again.load([3])  # not cached: needs the network


def test_vanished_revision_is_forgotten(online, monkeypatch, wino_root):
    monkeypatch.setattr(hub, "fetch_revision", lambda repo_id: "old")

    def gone(*args, **kwargs):
        raise _http(RevisionNotFoundError, 404)

    monkeypatch.setattr(hub, "open_split", gone)
    ds = get_dataset("winoground")
    with pytest.raises(UserError, match="no longer exists.*run again"):
        ds.load([0])
    monkeypatch.setattr(hub, "fetch_revision", lambda repo_id: "new")
    assert get_dataset("winoground").identity() == f"{REPO}@new"


def test_fingerprint_ignores_hidden_folders(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    before = hub.data_dir_stamp(str(tmp_path))
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "lock").write_text("y")
    assert hub.data_dir_stamp(str(tmp_path)) == before
    (tmp_path / "b.txt").write_text("z")
    assert hub.data_dir_stamp(str(tmp_path)) != before


def test_webdataset_from_the_hub_probes_shard_keys_once(online, monkeypatch, tmp_path):
    """The Hub path of a webdataset split: shard starts from first-key probes (cached), and
    only the shards from the one holding the first wanted index are streamed."""
    from tests.fixtures_data import retrieval_samples, write_tars

    samples = retrieval_samples(30, "jpg")
    shards = [str(p) for p in write_tars(tmp_path, samples, per_shard=3)]  # 10 shards
    repo = "clip-benchmark/wds_mscoco_captions"
    probes, opened = [], []
    original_head, original_files = hub.read_head, hub.open_files
    monkeypatch.setattr(hub, "fetch_revision", lambda repo_id: "sha1")
    monkeypatch.setattr(hub, "split_files", lambda source, split, revision=None:
                        {"test": sorted(shards)} if (source, revision) == (repo, "sha1") else {})
    monkeypatch.setattr(hub, "read_head", lambda url, size=512: probes.append(url)
                        or original_head(url, size))
    monkeypatch.setattr(hub, "open_files", lambda b, s, files: opened.append(files)
                        or original_files(b, s, files))
    ds = get_dataset("coco", all_captions=True)
    assert ds.identity() == f"{repo}@sha1"
    (ex,) = ds.load([25])
    assert ex.captions[0] == samples[25]["txt"].decode().splitlines()[0]
    assert opened[-1][0].endswith("/8.tar") and len(probes) <= 5
    probed = len(probes)
    monkeypatch.setattr(hub, "_REVISIONS", {})
    assert [e.index for e in get_dataset("coco").load([26, 27])] == [26, 27]
    assert len(probes) == probed  # the probes were cached with the revision


def test_repository_with_a_loading_script_read_from_parquet_export(monkeypatch, wino_root):
    import datasets

    original, revisions = datasets.load_dataset, []

    def fake(path, split=None, revision=None, **kwargs):
        revisions.append(revision)
        if revision != hub.PARQUET_BRANCH:
            raise RuntimeError("Dataset scripts are no longer supported, but found winoground.py")
        return original(str(wino_root), split=split, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    rows = list(hub.open_split(REPO, "test", "abc").take(2))
    assert revisions == ["abc", hub.PARQUET_BRANCH] and len(rows) == 2
    assert set(rows[0]["image_0"]) == {"bytes", "path"}  # undecoded
