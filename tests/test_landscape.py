"""Loss surfaces of a cut slice, from the embeddings the run keeps (no model needed)."""

import numpy as np
import pytest

import engineered_latents as el
from engineered_latents import landscape, losses


@pytest.fixture(scope="module")
def run(tiny_clip, tmp_path_factory):
    return el.compute_cuts(el.SliceSpec("demo", 0, 3), el.CutSpec(n_eig=8, clusters=4),
                           el.ModelSpec(tiny_clip), cache=el.Cache(tmp_path_factory.mktemp("c")))


def test_node_features_are_the_valid_patches_and_tokens(run):
    nodes = landscape.node_features(run)
    assert nodes.patches.shape == (6 * 49, 16)  # 3 examples x 2 images, CLS excluded
    assert len(nodes.tokens) == sum(len(p.tokens) for p in run.pairs)  # all captions differ
    X, Y = landscape.paired_features(nodes)
    assert X.shape == Y.shape == (6, 16)
    first = run.result.patch_embeddings[run.result.pair_items[0][0]][1:].astype(np.float32)
    np.testing.assert_allclose(X[0], first.mean(0), rtol=1e-5)


def test_weight_planes_match_the_scalar_losses(run):
    alphas, betas = np.linspace(0, 2, 5), np.linspace(0, 1, 3)
    planes = landscape.weight_planes(run, 2, alphas, betas)
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            assert planes["cluster_surface"][i, j] == pytest.approx(
                losses.cluster_loss(run.result.eigval, 2, a, b), abs=1e-5)
    assert planes["cka_vs_noise"][0] == pytest.approx(planes["cka"], abs=1e-5)
    assert 1 <= planes["eigengap_k"] <= len(planes["ks"])
    with pytest.raises(el.UserError, match="k must be between"):
        landscape.weight_planes(run, 50, alphas, betas)


def test_direction_landscape_is_centred_on_the_current_embeddings_and_seeded(run):
    first = landscape.direction_landscape(run, k=2, grid=3, max_nodes=150, seed=1)
    X, Y = landscape.paired_features(landscape.node_features(run))
    assert first["cka"].shape == (3, 3)
    assert first["cka"][1, 1] == pytest.approx(losses.cka_loss(X, Y), abs=1e-4)
    assert first["nodes_for_cluster"] <= 152
    again = landscape.direction_landscape(run, k=2, grid=3, max_nodes=150, seed=1)
    np.testing.assert_array_equal(first["cluster"], again["cluster"])
    assert not np.allclose(first["cka"], first["cka"][1, 1])  # moving changes the loss
