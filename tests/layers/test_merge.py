"""AlphaMerge (Video LDM) against its closed form and gradient."""

from __future__ import annotations

import math

import torch

from t2v.layers import AlphaMerge


def test_closed_form_value_and_gradient():
    m = AlphaMerge()
    assert m.alpha.item() == 0.5
    with torch.no_grad():
        m.logit.fill_(0.7)
    s, t, g = torch.randn(3, 4, 5), torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    out = m(s, t)
    a = 1 / (1 + math.exp(-0.7))
    torch.testing.assert_close(out, a * s + (1 - a) * t, atol=1e-6, rtol=1e-6)
    out.backward(g)
    # d out / d logit = sigmoid'(logit) * (s - t)
    torch.testing.assert_close(m.logit.grad, torch.tensor(a * (1 - a) * ((s - t) * g).sum().item()), atol=1e-5, rtol=1e-5)


def test_init_alpha_and_image_only_force_alpha_one():
    m = AlphaMerge(init_alpha=0.9)
    torch.testing.assert_close(m.alpha, torch.tensor(0.9))
    s, t = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    y = m(s, t, keep=torch.tensor([True, False, False]))
    assert torch.equal(y[1:], s[1:])
    torch.testing.assert_close(y[0], 0.9 * s[0] + 0.1 * t[0])
