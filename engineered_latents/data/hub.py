"""Reading datasets through `datasets`: streamed from the Hub or from a local copy of a Hub repo.

Protocol (what the adapters rely on):

- `source` is either a Hub dataset id ("facebook/winoground") or a local directory laid out like
  that repository (`data/<split>-00000-of-00001.parquet`, or webdataset tars `test/*.tar`).
- `open_split(source, split, revision)` streams one split with `datasets.load_dataset(...,
  streaming=True)`, media decoding off: images arrive as `{"bytes", "path"}` dicts, so a broken
  image cannot stop the stream; adapters decode them with `images.load_image`.
- `open_files(builder, split, files)` streams an explicit list of data files (resolved URLs or
  local paths), so that webdataset shards before a late start index are not read at all.
- Revisions: the first time a Hub dataset is used its commit sha is fetched and *pinned* in the
  project cache; later runs read that same revision and key their cache entries with it, so a
  slice seen once needs no network (not even for the revision). A pinned revision that has since
  vanished from the Hub is forgotten with a message asking to run again.
- Every Hub failure becomes one `UserError` whose message says what to do (`hub_error`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError

log = logging.getLogger(__name__)

_REVISIONS: dict[str, str] = {}  # repo id -> pinned sha, for this process


def dataset_url(repo_id: str) -> str:
    return f"https://huggingface.co/datasets/{repo_id}"


def is_local(source: str) -> bool:
    return Path(source).expanduser().is_dir()


# ----------------------------------------------------------------------------- network state


def offline() -> bool:
    """True when HF_HUB_OFFLINE is set or huggingface.co cannot be reached (decided in ~2 s)."""
    from ..models import hub_offline

    return hub_offline()


def no_network_error(dataset: str, repo_id: str) -> UserError:
    return UserError(
        f"Dataset {dataset!r} ({repo_id}) is needed but the Hugging Face Hub cannot be reached "
        "(no network, or HF_HUB_OFFLINE is set) and these examples are not in the cache. Either "
        "run once with network access (the examples read are then cached for offline use), or "
        f"point --data-path at a local copy of the repository (e.g. `hf download {repo_id} "
        "--repo-type dataset --local-dir DIR`, then --data-path DIR)."
    )


# ----------------------------------------------------------------------------- revisions


def fetch_revision(repo_id: str) -> str:
    """The current commit sha of a Hub dataset (one API call)."""
    from huggingface_hub import HfApi

    return HfApi().dataset_info(repo_id).sha


def _pin_key(repo_id: str) -> str:
    from ..cache import cache_key

    return cache_key("hub-revision", {"repo": repo_id})


def pinned_revision(repo_id: str, dataset: str, cache) -> str:
    """The revision this project reads `repo_id` at: memoized, pinned in `cache`, else fetched."""
    if repo_id in _REVISIONS:
        return _REVISIONS[repo_id]
    sha = cache.get(_pin_key(repo_id)) if cache is not None else None
    if not sha:
        if offline():
            raise no_network_error(dataset, repo_id)
        with hub_errors(dataset, repo_id):
            sha = fetch_revision(repo_id)
        if cache is not None:
            cache.set(_pin_key(repo_id), sha)
    _REVISIONS[repo_id] = sha
    return sha


def forget_revision(repo_id: str, cache) -> None:
    _REVISIONS.pop(repo_id, None)
    if cache is not None:
        cache.delete(_pin_key(repo_id))


# ----------------------------------------------------------------------------- errors


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _status(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def hub_error(error: BaseException, dataset: str, repo_id: str) -> UserError | None:
    """The `UserError` for a failure while talking to the Hub, or None when it is not one.

    The whole cause chain is searched, most specific first (`datasets` wraps Hub errors, e.g.
    a GatedRepoError or RevisionNotFoundError inside a DatasetNotFoundError).
    """
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain = list(_chain(error))
    for e in chain:
        text = str(e)
        if isinstance(e, GatedRepoError) or (type(e).__name__ == "DatasetNotFoundError"
                                             and "gated" in text):
            no_token = _status(e) == 401 or "authenticated" in text
            return _gated(dataset, repo_id, dataset_url(repo_id), no_token)
    if any(isinstance(e, RevisionNotFoundError) for e in chain):
        return UserError(
            f"The revision of {repo_id} that the cache was pinned to no longer exists on the "
            "Hub; the pin has been dropped: run again to read the current revision."
        )
    if any(isinstance(e, RepositoryNotFoundError) or type(e).__name__ == "DatasetNotFoundError"
           for e in chain):
        return UserError(
            f"Dataset {dataset!r}: {repo_id} was not found on the Hugging Face Hub (404). It "
            "may have been renamed, removed or made private; point --data-path at a local copy "
            "of it instead."
        )
    for e in chain:
        if isinstance(e, HfHubHTTPError) or _status(e) is not None:
            return _http_error(_status(e), dataset, repo_id, str(e))
    if any(isinstance(e, (OfflineModeIsEnabled, ConnectionError, TimeoutError))
           or _is_transport(e) for e in chain):
        return no_network_error(dataset, repo_id)
    return None


def _is_transport(error: BaseException) -> bool:
    """httpx2 / httpx / aiohttp network failures, recognised without importing them."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"TransportError", "ConnectError", "TimeoutException", "NetworkError",
                         "ClientConnectionError", "ServerDisconnectedError"})


def _gated(dataset: str, repo_id: str, url: str, no_token: bool) -> UserError:
    if no_token:
        why = "no Hugging Face token was sent (HF_TOKEN is not set and you are not logged in)"
    else:
        why = "the account of your token has not been granted access yet"
    return UserError(
        f"Dataset {dataset!r} ({repo_id}) is gated on the Hugging Face Hub and {why}. To use "
        f"it: log in at {url} and accept the terms of use there, then create a read token at "
        "https://huggingface.co/settings/tokens and set HF_TOKEN=<token> (or run `hf auth "
        "login`). Or point --data-path at a local copy."
    )


def _http_error(status: int | None, dataset: str, repo_id: str, text: str) -> UserError:
    if status == 429:
        return UserError(
            f"The Hugging Face Hub is rate-limiting requests (429) while reading {repo_id} for "
            f"{dataset!r}. Wait a few minutes and run again (examples already read are cached); "
            "requests with a token (HF_TOKEN) get a higher limit."
        )
    if status in (401, 403):
        return UserError(
            f"The Hugging Face Hub refused access to {repo_id} ({status}). Check HF_TOKEN (an "
            "invalid or expired token is refused even for public datasets), or unset it."
        )
    if status is not None and status >= 500:
        return UserError(
            f"The Hugging Face Hub had a server error ({status}) while reading {repo_id}; try "
            "again later, or point --data-path at a local copy."
        )
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return UserError(f"The Hugging Face Hub refused a request for {repo_id} ({status}): "
                     f"{first_line}")


def revision_gone(error: BaseException) -> bool:
    from huggingface_hub.errors import RevisionNotFoundError

    return any(isinstance(e, RevisionNotFoundError) for e in _chain(error))


@contextlib.contextmanager
def hub_errors(dataset: str, repo_id: str, on_revision_gone=None):
    """Turn Hub failures inside the block into their `UserError`s; anything else passes through.

    `on_revision_gone()` runs first when the pinned revision no longer exists (to drop the pin).
    """
    try:
        yield
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - mapped below or re-raised unchanged
        mapped = hub_error(e, dataset, repo_id)
        if mapped is None:
            raise
        if on_revision_gone is not None and revision_gone(e):
            on_revision_gone()
        raise mapped from e


@contextlib.contextmanager
def local_errors(dataset: str, path: str, expected: str):
    """Turn a `datasets` failure to find or read a local copy into a `UserError`."""
    try:
        yield
    except UserError:
        raise
    except (FileNotFoundError, ValueError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"Could not read dataset {dataset!r} from --data-path {path}: {text}. Expected a copy "
            f"of its Hub repository laid out as {expected}."
        ) from e


# ----------------------------------------------------------------------------- streaming


def _quiet_datasets() -> None:
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()


def _datasets_cache_dir() -> str:
    """Where `datasets` may put its lock files and metadata: inside the project cache, so that
    streaming never writes to ~/.cache/huggingface/datasets (it does by default, even for a
    local folder)."""
    from ..config import Settings

    return str(Path(Settings.from_env().cache_dir) / "hf-datasets")


PARQUET_BRANCH = "refs/convert/parquet"  # the Hub's own parquet export of every dataset


def open_split(source: str, split: str, revision: str | None = None):
    """One split of a Hub dataset or local copy as a streaming `IterableDataset`, undecoded.

    A Hub repository that still has a loading script (`datasets` >= 4 refuses to run them) is
    read from the Hub's parquet export branch instead.
    """
    import datasets

    _quiet_datasets()
    local = is_local(source)
    path = str(Path(source).expanduser()) if local else source
    try:
        stream = datasets.load_dataset(path, split=split, streaming=True, revision=revision,
                                       cache_dir=_datasets_cache_dir())
    except RuntimeError as e:
        if local or "scripts are no longer supported" not in str(e):
            raise
        log.info("%s has a loading script; reading its parquet export instead.", source)
        stream = datasets.load_dataset(path, split=split, streaming=True,
                                       revision=PARQUET_BRANCH, cache_dir=_datasets_cache_dir())
    return stream.decode(False)


def open_files(builder: str, split: str, files: list[str]):
    """An explicit list of data files (e.g. some webdataset shards) as one streamed split."""
    import datasets

    _quiet_datasets()
    stream = datasets.load_dataset(builder, data_files={split: list(files)}, split=split,
                                   streaming=True, cache_dir=_datasets_cache_dir())
    return stream.decode(False)


def split_files(source: str, split: str, revision: str | None = None) -> dict[str, list[str]]:
    """{split name: resolved data files} for every split of `source` (no data is read)."""
    import datasets

    _quiet_datasets()
    path = str(Path(source).expanduser()) if is_local(source) else source
    builder = datasets.load_dataset_builder(path, revision=revision,
                                            cache_dir=_datasets_cache_dir())
    return {str(name): [str(f) for f in files]
            for name, files in (builder.config.data_files or {}).items()}


def open_binary(url: str):
    """A binary file object for a resolved data file: a local path or an fsspec URL (hf://)."""
    import fsspec

    return fsspec.open(url, "rb").open()


def read_head(url: str, size: int = 512) -> bytes:
    """The first `size` bytes of a data file (one small range request for a remote file)."""
    if "://" not in url:
        with open(url, "rb") as f:
            return f.read(size)
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs.cat_file(path, start=0, end=size)


# ----------------------------------------------------------------------------- local copies


def data_dir_stamp(path: str) -> str:
    """Whether a local copy changed: a stamp of its files' relative names, sizes and mtimes
    (stat calls only, no content read; a copy with other mtimes gets another stamp)."""
    root = Path(path).expanduser().resolve()
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            file = Path(folder) / name
            stat = file.stat()
            rel = file.relative_to(root).as_posix()
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
