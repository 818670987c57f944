import hashlib

import numpy as np
import torch

import data.clusters as clusters
from data.clusters import fit_kmeans, fit_sample, kmeans_key, object_clusters, torch_kmeans
from data.store import GraphStore


class FeatureStore(GraphStore):
    def __init__(self, features: torch.Tensor) -> None:
        self.nodes = {"object/x": features}


def test_the_digest_read_in_blocks_is_the_digest_of_the_whole(monkeypatch):
    features = torch.randn(10, 5)
    monkeypatch.setattr(clusters, "HASH_ROWS", 3)
    assert clusters.features_digest(features) == hashlib.sha256(features.numpy().tobytes()).hexdigest()


def test_kmeans_fits_a_seeded_sample_when_the_tokens_outnumber_the_limit(tmp_path, monkeypatch):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(120, 6, generator=generator)
    fitted_rows = []
    real_fit = clusters.fit_kmeans

    def recording_fit(x, k, seed=0, device="cpu"):
        fitted_rows.append(len(x))
        return real_fit(x, k, seed, device)

    monkeypatch.setattr(clusters, "fit_kmeans", recording_fit)
    sampled = object_clusters(FeatureStore(features), 4, seed=2, cache_dir=tmp_path, limit=50)
    sample = fit_sample(120, 50, 2)
    assert fitted_rows == [50] and len(sample.unique()) == 50 and bool((sample.diff() > 0).all())
    assert torch.equal(sampled, fit_kmeans(features[sample], 4, 2))
    whole = object_clusters(FeatureStore(features), 4, seed=2, cache_dir=tmp_path, limit=500)
    assert fitted_rows == [50, 120] and torch.equal(whole, fit_kmeans(features, 4, 2))
    assert kmeans_key(features, 4, 2, "cpu", 50) != kmeans_key(features, 4, 2, "cpu", 500)
    assert kmeans_key(features, 4, 2, "cpu", 500) == kmeans_key(features, 4, 2, "cpu", 120)  # both: every token
    assert fit_sample(120, 120, 0) is None


def test_torch_kmeans_in_blocks_equals_it_whole():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(-4, 5, size=(90, 3)).astype(np.float32))  # exact distances
    assert torch.equal(torch_kmeans(x, 5, iterations=8, chunk=7), torch_kmeans(x, 5, iterations=8, chunk=1000))
