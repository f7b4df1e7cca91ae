"""Resuming checks the checkpoint's config against the current one, field by field."""

from __future__ import annotations

import json

import pytest

from t2v.errors import T2VError
from t2v.training.config import TrainConfig, config_to_dict
from t2v.training.loop import _check_same_config


def _now(**diffusion):
    c = config_to_dict(TrainConfig(stage="image", output_dir="out"))
    c["diffusion"].update(diffusion)
    return json.loads(json.dumps(c))


def _saved_before_the_field_existed():
    saved = _now()
    del saved["diffusion"]["timestep_distribution"]
    return saved


def test_a_field_added_later_at_its_default_resumes():
    _check_same_config(_saved_before_the_field_existed(), _now(), "ckpt")  # no error


def test_a_field_added_later_set_to_another_value_is_named():
    with pytest.raises(T2VError, match=r"diffusion\.timestep_distribution = None, now 'logit_normal'"):
        _check_same_config(_saved_before_the_field_existed(), _now(timestep_distribution="logit_normal"), "ckpt")


def test_a_changed_field_is_named_and_resumable_ones_pass():
    with pytest.raises(T2VError, match=r"diffusion\.logit_mean = 0\.0, now 1\.0"):
        _check_same_config(_now(), _now(logit_mean=1.0), "ckpt")
    later = _now()
    later["max_steps"] = 10 * later["max_steps"]
    _check_same_config(_now(), later, "ckpt")


def test_decoder_loss_weights_may_change_on_resume_but_not_the_network():
    """A second phase of the temporal decoder's training reweights its losses; the layers may not change."""
    later = _now()
    later["cascade"].update(temporal_weight=4.0, adversarial_weight=0.0)
    _check_same_config(_now(), later, "ckpt")
    later["cascade"]["decoder_kernel"] = [3, 1, 1]
    with pytest.raises(T2VError, match=r"cascade\.decoder_kernel = \[3, 3, 3\], now \[3, 1, 1\]"):
        _check_same_config(_now(), later, "ckpt")
