"""The recursive cut: the tree's structure, its features, stopped branches, the cache,
summary.json and the CLI, and the page's sunburst and node views (tiny model, small slices)."""

import json

import numpy as np
import pytest

from engineered_latents import recursive as R
from engineered_latents.analysis import cluster_summaries
from engineered_latents.cache import Cache
from engineered_latents.config import CutSpec, ModelSpec, Settings, SliceSpec
from engineered_latents.errors import UserError
from engineered_latents.pipeline import compute_cuts

HOSTILE = "<b>x</b>"


@pytest.fixture(scope="module")
def runs(tiny_clip, tmp_path_factory):
    cache = Cache(tmp_path_factory.mktemp("recursive_cache"))
    # k = 2 in scalar mode (fewer sub-cuts: each costs ncut-pytorch's fixed ~0.1 s), 3 in joint
    out = {mode: compute_cuts(SliceSpec(count=1), CutSpec(mode=mode, n_eig=6, clusters=k),
                              ModelSpec(tiny_clip), cache=cache)
           for mode, k in (("scalar", 2), ("joint", 3))}
    out["cache"] = cache
    return out


@pytest.fixture(scope="module")
def trees(runs):
    return {mode: R.recursive_cut(runs[mode], 3, runs["cache"]) for mode in ("scalar", "joint")}


@pytest.mark.parametrize("mode", ["scalar", "joint"])
def test_tree_structure(runs, trees, mode):
    run, tree = runs[mode], trees[mode]
    by_id = {n.id: n for n in tree.nodes}
    assert len(by_id) == len(tree.nodes)
    assert {n.level for n in tree.nodes} == {1, 2, 3}
    level1 = [n for n in tree.nodes if n.level == 1]
    # level 1 is the slice's own k-way cut, with the same summaries as the cluster table
    summaries = {c["cluster"]: c for c in cluster_summaries(run)}
    assert sum(n.size for n in level1) == tree.n_nodes == len(run.result.labels)
    for n in level1:
        assert n.parent is None and n.id == str(n.cluster)
        np.testing.assert_array_equal(tree.members[n.id], np.flatnonzero(run.result.labels
                                                                         == n.cluster))
        assert n.words == summaries[n.cluster]["words"] and n.size == summaries[n.cluster]["size"]
    for n in tree.nodes:
        rows = tree.members[n.id]
        assert len(rows) == n.size > 0
        if n.parent is not None:
            parent = by_id[n.parent]
            assert n.level == parent.level + 1 and n.id == f"{parent.id}.{n.cluster}"
            assert n.id in parent.children
            assert set(rows) <= set(tree.members[parent.id])
        if n.children:
            kids = [tree.members[c] for c in n.children]
            assert sum(by_id[c].size for c in n.children) == n.size
            union = np.concatenate(kids)
            assert len(np.unique(union)) == len(union)  # disjoint
            assert set(union) == set(rows)  # and covering the parent
            assert n.eigenvalues is not None and abs(n.eigenvalues[0] - 1) < 1e-3
            assert len(n.children) <= tree.k and n.stopped is None
        if n.level == 3:
            assert not n.children and n.eigenvalues is None and n.stopped is None
        elif not n.children:
            assert n.stopped and n.eigenvalues is None


def test_scalar_features_are_the_affinities(runs):
    """Scalar nodes' features: the cosine of the (pair, patch, token) embeddings, by a loop."""
    run = runs["scalar"]
    res = run.result
    features = R.node_features(run)
    assert features.shape == (len(res.index), 1)
    for row in np.linspace(0, len(res.index) - 1, 25).astype(int):
        pair, patch, token = res.index[row]
        image, caption = res.pair_items[pair]
        a = np.asarray(res.patch_embeddings[image][patch], np.float64)
        b = np.asarray(res.token_embeddings[caption][token], np.float64)
        assert abs(features[row, 0] - a @ b / np.linalg.norm(a) / np.linalg.norm(b)) < 1e-4


def test_joint_features_are_the_centred_embeddings(runs):
    run = runs["joint"]
    res = run.result
    features = R.node_features(run)
    patches = [r for r in range(len(res.index)) if res.index[r, 0] == 0]
    raw = np.stack([np.asarray(res.patch_embeddings[res.index[r, 1]][res.index[r, 2]],
                               np.float64) for r in patches])
    centred = raw - raw.mean(0)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(features[patches], centred, atol=1e-5)


def test_a_small_branch_stops_and_says_why(runs):
    run = runs["joint"]
    sizes = np.bincount(run.result.labels)
    small = int(sizes[sizes > 0].min())
    reports = []
    tree = R.recursive_cut(run, 3, min_nodes=small + 1,
                           progress=lambda stage, f: reports.append((stage, f)))
    assert len(reports) == sum(n.eigenvalues is not None for n in tree.nodes)  # one per sub-cut
    fractions = [f for _, f in reports]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] <= 1
    stopped = [n for n in tree.nodes if n.stopped]
    assert any(n.size == small and n.level == 1 for n in stopped)
    for n in stopped:
        assert n.size < small + 1 and not n.children and n.eigenvalues is None
        assert f"too few nodes to cut: {n.size}" in n.stopped
    line = R.describe_stops(tree)
    assert line.startswith(f"{len(stopped)} branch(es) stopped before level 3")
    assert "\n" not in line and f"under {small + 1}" in line


def test_a_constant_branch_stops_with_the_ncut_message(runs, monkeypatch):
    run = runs["scalar"]
    monkeypatch.setattr(R, "node_features",
                        lambda run: np.ones((len(run.result.labels), 1), np.float32))
    tree = R.recursive_cut(run, 2)
    level1 = [n for n in tree.nodes if n.level == 1]
    assert len(tree.nodes) == len(level1)
    assert all("same value" in n.stopped for n in level1)


def test_one_level_is_the_slice_clusters_only(runs, monkeypatch):
    def no_features(run):
        raise AssertionError("one level needs no features")

    monkeypatch.setattr(R, "node_features", no_features)
    tree = R.recursive_cut(runs["scalar"], 1)
    assert [n.size for n in tree.nodes] == [s for s in runs["scalar"].cluster_sizes() if s]
    assert not tree.stops and all(n.eigenvalues is None for n in tree.nodes)


def test_the_tree_is_cached_with_the_run(runs, trees, monkeypatch):
    """The fixture computed the joint tree with the cache: asking again reads it."""
    monkeypatch.setattr(R, "_build", lambda *a: pytest.fail("recomputed"))
    again = R.recursive_cut(runs["joint"], 3, runs["cache"])
    assert again.from_cache and [n.id for n in again.nodes] == [n.id for n in trees["joint"].nodes]
    assert again.nodes[0].eigenvalues == trees["joint"].nodes[0].eigenvalues


@pytest.mark.parametrize("levels", [0, 4, -1, True, 2.5, "3"])
def test_bad_levels(runs, levels):
    with pytest.raises(UserError, match="Recursive levels"):
        R.recursive_cut(runs["scalar"], levels)


@pytest.mark.parametrize("mode", ["scalar", "joint"])
def test_node_patch_map(runs, trees, mode):
    run, tree = runs[mode], trees[mode]
    res = run.result
    node = next(n for n in tree.nodes if n.level == 2)
    inside = set(tree.members[node.id].tolist())
    values = R.node_patch_map(run, tree.members[node.id], 1)
    assert np.isnan(values[0])  # the CLS patch is not a node
    for patch in range(1, res.n_patches):
        if mode == "scalar":
            rows = [r for r in range(len(res.index))
                    if res.index[r, 0] == 1 and res.index[r, 1] == patch]
            expected = sum(r in inside for r in rows) / len(rows)
        else:
            image = res.pair_items[1][0]
            row = next(r for r in range(len(res.index)) if tuple(res.index[r]) == (0, image, patch))
            expected = float(row in inside)
        assert values[patch] == pytest.approx(expected)


def test_cli_recursive_writes_the_tree(tiny_clip, runs, trees, tmp_path, monkeypatch, capsys):
    from engineered_latents.__main__ import main

    monkeypatch.chdir(tmp_path)
    # the module's joint run and tree: both from its cache (the CLI's own path is tested)
    args = ["cuts", "--model", tiny_clip, "--count", "1", "--n-eig", "6", "--mode", "joint",
            "--clusters", "3", "--cache-dir", runs["cache"].directory]
    capsys.readouterr()
    assert main([*args, "--recursive", "3", "--out", "r"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    tree = summary["recursive"]
    assert tree["levels"] == 3 and tree["k"] == 3 and tree["n_nodes"] == summary["n_nodes"]
    for node in tree["nodes"]:
        assert {"id", "parent", "level", "cluster", "size", "words", "eigenvalues", "stopped",
                "children"} <= set(node)
        assert 1 <= node["level"] <= 3
    level1 = [n["size"] for n in tree["nodes"] if n["level"] == 1]
    assert sorted(level1) == sorted(s for s in summary["clusters"]["sizes"] if s)
    lines = [line for line in out.splitlines() if line.startswith("recursive")]
    assert lines[0].startswith("recursive   3 levels, k=3:") and "from the cache" in lines[0]
    stops = [n for n in tree["nodes"] if n["stopped"]]
    assert len(lines) == 1 + bool(stops)  # one line about the stopped branches, if any
    if stops:
        assert f"{len(stops)} branch(es) stopped" in lines[1]
    # no --recursive (level 1): summary.json as before, no tree
    assert main([*args, "--out", "plain"]) == 0
    assert "recursive" not in json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert "recursive" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def view(tiny_clip, runs):
    from engineered_latents.ui import views as V

    # the module's cache: the joint run above, from the cache
    explorer = V.Explorer(Settings(runs["cache"].directory, 1, 16), default_model=tiny_clip)
    request = explorer.request(dataset="demo", start=0, count=1, indices="", model=None,
                               mode="joint", n_eig=6, sharpness=0, clusters=3, seed=0,
                               include_special=False, patch_norm=True)
    v = explorer.run(request)
    assert v.run.cache["cuts"] == "hit"
    return explorer, v


def test_sunburst_ids_and_parents_follow_the_tree(view):
    from engineered_latents.figures_tree import ROOT
    from engineered_latents.ui import tree_views as TV

    explorer, v = view
    tree = TV.tree_for(v, 3, explorer.cache)
    assert TV.tree_for(v, 3, explorer.cache) is tree  # held in memory
    trace = TV.sunburst_figure(v, tree).data[0]
    ids, parents, values = list(trace.ids), list(trace.parents), list(trace.values)
    assert ids == [ROOT] + [n.id for n in tree.nodes]
    assert parents == [""] + [n.parent or ROOT for n in tree.nodes]
    assert trace.branchvalues == "total" and values[0] == tree.n_nodes
    value_of = dict(zip(ids, values))
    for node_id in ids:
        kids = [value_of[i] for i, p in zip(ids, parents) if p == node_id]
        if kids:
            assert sum(kids) == value_of[node_id]
    assert [v for _, v in TV.node_choices(tree)] == [n.id for n in tree.nodes]


def test_node_view_shows_patches_and_words(view):
    from engineered_latents.ui import tree_views as TV

    explorer, v = view
    tree = TV.tree_for(v, 3, explorer.cache)
    node = next(n for n in tree.nodes if n.patch_nodes and n.level == 2)
    fig = TV.node_figure(v, tree, node.id)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == len(node.pairs[:TV.NODE_PANELS])
    expected = R.node_patch_map(v.run, tree.members[node.id], node.pairs[0])[1:]
    np.testing.assert_allclose(np.asarray(heat[0].z, float).ravel(), expected)
    text = TV.node_markdown(tree, node.id)
    assert f"node {node.id}" in text and f"{node.size} graph nodes" in text
    with pytest.raises(UserError, match="does not exist"):
        TV.node_figure(v, tree, "9.9.9")
    with pytest.raises(UserError, match="Levels is 0"):
        TV.check_levels(0)


def test_labels_are_escaped():
    from engineered_latents.figures_tree import tree_sunburst

    fig = tree_sunburst(["0"], [None], [3], [HOSTILE], [[HOSTILE]], HOSTILE)
    assert "<b>" not in "".join(fig.data[0].labels) + "".join(fig.data[0].customdata)
    assert "<b>x" not in fig.layout.title.text


def test_page_section_handlers(view):
    """The section's handlers as the page calls them: a tree, another node, refusals."""
    import gradio as gr

    from engineered_latents.ui.tree import EMPTY, TreeSection

    explorer, v = view
    with gr.Blocks():
        section = TreeSection(explorer, gr.State(None))
    note, sunburst, picker, text, patches, shown = section.on_tree(v.request, 3)
    assert "3 levels, k=3" in note and shown == 3
    assert [c[1] for c in picker["choices"]] == list(sunburst.data[0].ids[1:])
    assert picker["value"] == "0" and "node 0" in text and patches.data
    text, _ = section.on_node(v.request, shown, picker["choices"][1][1])
    assert f"node {picker['choices'][1][1]}" in text
    with pytest.raises(gr.Error, match="Cut recursively"):
        section.on_node(v.request, None, "0")
    with pytest.raises(gr.Error, match="does not exist") as refused:
        section.on_node(v.request, shown, HOSTILE)
    assert "<b>" not in str(refused.value)
    with pytest.raises(gr.Error, match="Levels is 5"):
        section.on_tree(v.request, 5)
    assert section.reset()[0] == EMPTY


def test_perf_figure_counts_the_sub_cuts(runs, trees):
    from engineered_latents import perf_recursive

    row = perf_recursive.measure_run(runs["joint"], 2)  # the 3-level tree's top two levels
    top = [n for n in trees["joint"].nodes if n.level <= 2]
    assert row["nodes"] == trees["joint"].n_nodes and row["tree_nodes"] == len(top)
    assert row["sub_cuts"] == sum(bool(n.children) for n in top if n.level == 1) > 0
    assert row["stopped"] == sum(bool(n.stopped) for n in top if n.level == 1)
    assert row["seconds"] > 0
    assert perf_recursive.pairs_to_measure([16, 64, 256]) == 64
    assert perf_recursive.pairs_to_measure([128, 256]) == 128


def test_the_pages_downloads_carry_the_tree_it_cut(view, tmp_path, monkeypatch):
    """Explore's "Prepare downloads" with a recursive cut shown: summary.json has the tree (as
    the CLI writes it) and figures.html the sunburst; without one, no `recursive` key."""
    import json

    import gradio as gr

    from engineered_latents.ui import tree_views as TV
    from engineered_latents.ui.explore import ExploreTab

    monkeypatch.setenv("EL_EXPORT_DIR", str(tmp_path / "exports"))
    explorer, v = view
    with gr.Blocks():
        tab = ExploreTab(explorer, gr.Markdown(), gr.HTML())
    tree = TV.tree_for(v, 2, explorer.cache)
    files = tab.on_export(v.request, levels=2)
    summary = json.loads(next(open(f) for f in files if f.endswith("summary.json")).read())
    assert [n["id"] for n in summary["recursive"]["nodes"]] == [n.id for n in tree.nodes]
    html = next(open(f) for f in files if f.endswith("figures.html")).read()
    assert "Recursive cut" in html and "sunburst" in html
    plain = tab.on_export(v.request)
    assert "recursive" not in json.loads(
        next(open(f) for f in plain if f.endswith("summary.json")).read())
