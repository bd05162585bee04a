"""Weighted k-NN metric: a hand-computed case, chunking, subsets."""
import math

import pytest
import torch

from folk.evaluation import class_balanced_indices, knn_predict, knn_top1

# bank: b0 = (1, 0) class 0, b1 = (0, 1) class 1, b2 = (1, 1) class 1;
# query q = (1, 0.2). Cosine similarities, by hand:
#   q.b0 = 1 / sqrt(1.04)              = 0.980581
#   q.b1 = 0.2 / sqrt(1.04)            = 0.196116
#   q.b2 = 1.2 / (sqrt(1.04) sqrt(2))  = 0.832050
BANK = torch.tensor([[1., 0.], [0., 1.], [1., 1.]])
LABELS = torch.tensor([0, 1, 1])
QUERY = torch.tensor([[1., 0.2]])
S0, S1, S2 = 0.980581, 0.196116, 0.832050


def test_vote_by_hand():
    # k = 3, T = 1: class 0 gets e^S0 = 2.666, class 1 e^S1 + e^S2 = 3.515
    scores = knn_predict(BANK, LABELS, QUERY, 2, k=3, temperature=1.0)
    expected = torch.tensor([[math.exp(S0), math.exp(S1) + math.exp(S2)]])
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=0)
    assert int(scores.argmax()) == 1
    # T = 0.07 sharpens the vote: the nearest neighbour (class 0) wins
    scores = knn_predict(BANK, LABELS, QUERY, 2, k=3, temperature=0.07)
    expected = torch.tensor(
        [[math.exp(S0 / 0.07),
          math.exp(S1 / 0.07) + math.exp(S2 / 0.07)]])
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=0)
    assert int(scores.argmax()) == 0
    # k = 1: only b0 votes
    scores = knn_predict(BANK, LABELS, QUERY, 2, k=1, temperature=1.0)
    torch.testing.assert_close(scores, torch.tensor([[math.exp(S0), 0.]]))


def test_top1_and_scale_invariance():
    queries = torch.tensor([[1., 0.2], [0.1, 5.]])  # -> class 0, class 1
    assert knn_top1(
        BANK, LABELS, queries, torch.tensor([0, 1]), k=3,
        temperature=0.07) == 100.
    assert knn_top1(
        BANK, LABELS, queries, torch.tensor([0, 0]), k=3,
        temperature=0.07) == 50.
    # cosine similarity: the feature norms do not matter
    assert knn_top1(
        BANK * 7,
        LABELS,
        queries * 0.01,
        torch.tensor([1, 1]),
        k=3,
        temperature=0.07) == 50.
    # k larger than the bank uses the whole bank
    torch.testing.assert_close(
        knn_predict(BANK, LABELS, QUERY, 2, k=50, temperature=1.0),
        knn_predict(BANK, LABELS, QUERY, 2, k=3, temperature=1.0))


def test_chunks_give_the_unchunked_scores():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(103, 16, generator=g)
    labels = torch.randint(0, 5, (103, ), generator=g)
    queries = torch.randn(37, 16, generator=g)
    full = knn_predict(bank, labels, queries, 5, k=20)
    chunked = knn_predict(
        bank, labels, queries, 5, k=20, query_chunk=8, bank_chunk=10)
    torch.testing.assert_close(chunked, full, rtol=1e-5, atol=0)
    # reference: the whole similarity matrix at once
    sim = torch.nn.functional.normalize(queries, dim=1) @ \
        torch.nn.functional.normalize(bank, dim=1).T
    top, idx = sim.topk(20, dim=1)
    ref = torch.zeros(37, 5).scatter_add_(1, labels[idx], (top / 0.07).exp())
    torch.testing.assert_close(full, ref, rtol=1e-5, atol=0)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='bank and queries'):
        knn_predict(BANK, LABELS, torch.ones(1, 3), 2)
    with pytest.raises(ValueError, match='bank_labels'):
        knn_predict(BANK, LABELS[:2], QUERY, 2)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 1\)'):
        knn_predict(BANK, LABELS, QUERY, 1)
    with pytest.raises(ValueError, match='k >= 1'):
        knn_predict(BANK, LABELS, QUERY, 2, k=0)
    with pytest.raises(ValueError, match='query_labels'):
        knn_top1(BANK, LABELS, QUERY, torch.tensor([0, 1]))


def test_class_balanced_indices():
    labels = [0] * 10 + [1] * 3 + [2] * 6
    idx = class_balanced_indices(labels, 4, seed=0)
    counts = [sum(labels[i] == c for i in idx) for c in range(3)]
    assert counts == [4, 3, 4]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    assert idx == class_balanced_indices(labels, 4, seed=0)  # fixed
    assert idx != class_balanced_indices(labels, 4, seed=1)
    assert class_balanced_indices(labels, None) == list(range(19))
    with pytest.raises(ValueError, match='per_class'):
        class_balanced_indices(labels, 0)
