"""Recipes as data: names, errors, round trip, and which parameters each recipe trains."""

from __future__ import annotations

import dataclasses

import pytest
from diffusers.models.attention import BasicTransformerBlock

from t2v.errors import T2VError
from t2v.models import RECIPES, Recipe, get_recipe, inflate


def test_four_recipes_and_unknown_name_lists_them():
    assert list(RECIPES) == ["vdm", "make-a-video", "tune-a-video", "video-ldm"]
    with pytest.raises(T2VError) as e:
        get_recipe("animatediff")
    msg = str(e.value)
    assert "\n" not in msg and all(name in msg for name in RECIPES)


def test_recipe_dict_round_trip():
    for r in RECIPES.values():
        assert Recipe.from_dict(r.to_dict()) == r
    with pytest.raises(T2VError, match="unknown recipe fields"):
        Recipe.from_dict({"name": "x", "paper": "y", "colour": 1})


def _names(model, pred):
    return {n for n, _ in model.named_parameters() if pred(n)}


@pytest.mark.parametrize("name", list(RECIPES))
def test_trainable_sets(unet2d, name):
    model = inflate(unet2d, name)
    trainable = set(model.trainable_parameters())
    added = set(model.added_parameters())
    everything = _names(model, lambda n: True)
    # 2D parameter count is unchanged by inflation.
    assert len(everything - added) == len(list(unet2d.parameters()))
    if name == "vdm":
        assert trainable == everything
    elif name == "tune-a-video":
        to_q = set()
        for mod_name, m in model.named_modules():
            if isinstance(m, BasicTransformerBlock):
                to_q |= {f"{mod_name}.{a}.to_q.weight" for a in ("attn1", "attn2")}
        assert to_q and trainable == added | to_q
    else:
        assert trainable == added and added
    model.set_trainable()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable


def test_custom_recipe_trains_everything(unet2d):
    rec = dataclasses.replace(RECIPES["make-a-video"], trainable=(".",))
    model = inflate(unet2d, rec)
    assert len(model.trainable_parameters()) == len(list(model.parameters()))
