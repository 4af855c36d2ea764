"""The pointing game: a hand-computed case, and the demo scenes against a by-hand computation."""

import json

import numpy as np
import pytest
import torch

from engineered_latents.localization import (
    box_in_crop,
    localization_batch,
    patches_in_box,
    pointing_game,
    pointing_hits,
)


def test_pointing_game_on_a_hand_computed_case():
    # 4 x 4 grid, centres at 0.125, 0.375, 0.625, 0.875: the box [0.25, 0.75) x [0, 0.5)
    # holds columns 1, 2 of rows 0, 1 = patches 1, 2, 5, 6.
    mask = patches_in_box(4, (0.25, 0.0, 0.75, 0.5))
    assert np.flatnonzero(mask).tolist() == [1, 2, 5, 6]
    maps = np.zeros((3, 16))
    maps[0, 5] = 1.0  # peak inside: hit
    maps[1, 15] = 1.0  # peak outside: miss
    maps[2, :] = np.nan
    maps[2, [2, 9]] = [0.5, 0.4]  # NaN ignored, peak at 2: hit
    masks = np.stack([mask] * 3)
    assert pointing_hits(maps, masks).tolist() == [True, False, True]
    game = pointing_game(maps, masks)
    assert game == {"hit_rate": pytest.approx(200 / 3), "chance": 25.0, "n": 3}
    with pytest.raises(ValueError, match="cases, patches"):
        pointing_hits(maps[:, :8], masks)


def test_boxes_follow_clips_resize_and_centre_crop():
    # 300 x 200: the short side is 200, the crop drops 50 px left and right
    assert box_in_crop((50, 0, 250, 100), 300, 200) == (0.0, 0.0, 1.0, 0.5)
    assert box_in_crop((0, 50, 100, 150), 100, 200) == (0.0, 0.0, 1.0, 1.0)


def _raw_maps_by_hand(model_dir, image, caption):
    """[patches, tokens] cosine of projected patch and token states, straight from
    transformers (post-layernorm patches, as the pipeline does by default)."""
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    tokenizer = CLIPTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        vision = model.vision_model(**processor(images=[image], return_tensors="pt"))
        patches = model.visual_projection(
            model.vision_model.post_layernorm(vision.last_hidden_state))[0, 1:]  # [P, D]
        ids = tokenizer([caption], return_tensors="pt")
        tokens = model.text_projection(model.text_model(**ids).last_hidden_state)[0]  # [T, D]
    patches = torch.nn.functional.normalize(patches, dim=-1)
    tokens = torch.nn.functional.normalize(tokens, dim=-1)
    pieces = tokenizer.convert_ids_to_tokens(ids["input_ids"][0])
    return (patches @ tokens.T).numpy(), [p.removesuffix("</w>") for p in pieces]


def test_demo_scenes_raw_pointing_and_chance_match_a_plain_loop(tiny_clip):
    from engineered_latents.data import get_dataset
    from engineered_latents.models import load_model, resolve_model

    examples = get_dataset("demo").load([0, 1, 2])
    lm = load_model(resolve_model(tiny_clip), "cpu", "float32")
    batch = localization_batch(lm, examples)
    assert len(batch["cases"]) == 3 * 2 * 4  # examples x images x (colour, shape) x objects
    hits, chance = [], []
    for ex in examples:
        for image_index, objects in enumerate(ex.meta["objects"]):
            raw, pieces = _raw_maps_by_hand(tiny_clip, ex.images[image_index],
                                            ex.captions[image_index])
            for obj in objects:
                x0, y0, x1, y1 = obj["box"]
                inside = [x0 <= (c + 0.5) * 32 < x1 and y0 <= (r + 0.5) * 32 < y1
                          for r in range(7) for c in range(7)]
                for word in (obj["colour"], obj["shape"]):
                    peak = int(np.argmax(raw[:, pieces.index(word)]))
                    hits.append(inside[peak])
                    chance.append(np.mean(inside))
    assert batch["raw"].tolist() == hits
    np.testing.assert_allclose(batch["chance"], chance)
    assert batch["scalar"].shape == batch["joint"].shape == (24,)


def test_localization_benchmark_reports_every_map_beside_chance(tiny_clip, tmp_path, capsys):
    from engineered_latents.__main__ import main

    out = tmp_path / "loc.json"
    assert main(["bench", "--benchmark", "localization", "--model", tiny_clip, "--limit", "2",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["metrics"]) == {"raw", "scalar", "joint", "chance"}
    assert result["cases"] == 16 and len(result["examples"]) == 16
    for method in ("raw", "scalar", "joint"):
        share = np.mean([e[method] for e in result["examples"]])
        assert result["metrics"][method] == round(100 * share, 2)
    assert "chance" in capsys.readouterr().out
