"""K-means over object tokens: the discrete targets of masked-token modelling (ClusterMIM) and of TCAS.

scikit-learn's MiniBatchKMeans on the CPU; a plain torch Lloyd's k-means
(k-means++ start) on a GPU. Cluster ids of a training set are cached beside
the graph cache, keyed by the object features themselves (so by whatever code made
them), K, the seed, the device (the two algorithms differ), this module's code
and the version of the library that runs it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from data.atomic import atomic_path
from data.cache import code_digest, default_cache_dir, project_modules
from data.store import GraphStore

LOG = logging.getLogger("semgraph")


def torch_kmeans(x: Tensor, clusters: int, iterations: int = 50, seed: int = 0) -> Tensor:
    """Centroids [K, F] of x [n, F] by Lloyd's algorithm from a k-means++ start (any device)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    n = len(x)
    first = int(torch.randint(n, (1,), generator=generator))
    centroids = [x[first]]
    distance = ((x - centroids[0]) ** 2).sum(1)
    for _ in range(1, clusters):
        probabilities = (distance / distance.sum().clamp(min=1e-12)).cpu()
        pick = int(torch.multinomial(probabilities, 1, generator=generator))
        centroids.append(x[pick])
        distance = torch.minimum(distance, ((x - x[pick]) ** 2).sum(1))
    centres = torch.stack(centroids)
    for _ in range(iterations):
        assign = torch.cdist(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=clusters).unsqueeze(1)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    return centres


def fit_kmeans(x: Tensor, clusters: int, seed: int = 0, device: str = "cpu") -> Tensor:
    """Centroids [K, F]: MiniBatchKMeans on the CPU, torch k-means on CUDA."""
    if len(x) < clusters:
        raise ValueError(f"{len(x)} tokens cannot make {clusters} clusters; lower K")
    if device.startswith("cuda"):
        return torch_kmeans(x.to(device), clusters, seed=seed).cpu()
    from sklearn.cluster import MiniBatchKMeans

    kmeans = MiniBatchKMeans(clusters, random_state=seed, batch_size=4096, n_init=3)
    kmeans.fit(x.numpy().astype(np.float32))
    return torch.from_numpy(kmeans.cluster_centers_).float()


def assign(x: Tensor, centroids: Tensor, chunk: int = 65536) -> Tensor:
    """Nearest centroid of every row -> [n] long."""
    return torch.cat([torch.cdist(x[k : k + chunk], centroids).argmin(1) for k in range(0, len(x), chunk)])


def kmeans_key(features: Tensor, clusters: int, seed: int, device: str) -> str:
    """What the centroids depend on: the features' bytes, K, the seed, the algorithm and its code."""
    import sklearn

    digest = hashlib.sha256(np.ascontiguousarray(features.numpy()).tobytes())
    algorithm = f"torch-{torch.__version__}" if device.startswith("cuda") else f"sklearn-{sklearn.__version__}"
    code = code_digest(project_modules([Path(__file__)]))
    keyed = [digest.hexdigest(), list(features.shape), str(features.dtype), clusters, seed, algorithm, code]
    return hashlib.sha256(json.dumps(keyed).encode()).hexdigest()


def object_clusters(
    store: GraphStore, clusters: int, seed: int = 0, cache_dir: str | Path | None = None, device: str = "cpu"
) -> Tensor:
    """K-means centroids of a store's object token features, from the cache when computed before."""
    features = store.nodes["object/x"].cpu()
    key = kmeans_key(features, clusters, seed, device)
    path = Path(cache_dir or default_cache_dir()) / "kmeans" / f"{key[:20]}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a broken file is recomputed, never used
            LOG.warning("k-means cache %s is unreadable; recomputing", path)
    LOG.info("k-means: %d clusters over %d object tokens", clusters, len(features))
    centroids = fit_kmeans(features, clusters, seed, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(centroids, tmp)
    return centroids
