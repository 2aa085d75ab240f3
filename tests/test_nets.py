"""Tests of pi2sb_lab.nets' shared helpers (the networks themselves: test_unet, test_mlp, test_denoiser, …)."""

from __future__ import annotations

import torch
from torch import nn

from pi2sb_lab.nets import predict_in_chunks
from pi2sb_lab.nets.classifier import DigitClassifier
from pi2sb_lab.nets.estimator import DegradationEstimator


def test_predict_in_chunks_equals_one_batch_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2)).train()
    x = torch.randn(10, 4, dtype=torch.float64)
    out = predict_in_chunks(net, net, x, batch_size=3, dtype=torch.float32)
    assert net.training, "the caller's train mode is restored"
    assert out.dtype == torch.float32 and not out.requires_grad
    with torch.no_grad():
        whole = net.eval()(x.float())                   # eval: dropout off, as in the chunks
    assert torch.allclose(out, whole, atol=1e-6, rtol=0), (out - whole).abs().max()


def test_classifier_and_estimator_predict_through_it():
    torch.manual_seed(0)
    images = torch.rand(5, 1, 32, 32) * 2 - 1
    clf, est = DigitClassifier().train(), DegradationEstimator().train()
    feats = clf.features(images, batch_size=2)
    assert feats.shape == (5, DigitClassifier.feature_dim) and clf.training
    with torch.no_grad():
        assert torch.allclose(feats, clf.eval().body(images), atol=1e-6, rtol=0)
    est_out = est.predict(images, batch_size=2)
    assert est.training and est_out.device == images.device
    with torch.no_grad():
        assert torch.allclose(est_out, est.eval()(images), atol=1e-6, rtol=0)
