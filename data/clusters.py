"""K-means over object tokens: the discrete targets of masked-token modelling (ClusterMIM) and of TCAS.

scikit-learn's MiniBatchKMeans on the CPU; a plain torch Lloyd's k-means
(k-means++ start) on a GPU. Cluster ids of a training set are cached beside
the graph cache, keyed by the object features themselves (so by whatever code made
them), K, the seed, the device (the two algorithms differ), the sample size,
this module's code and the version of the library that runs it.

At COCO scale (train2017: ~900k object tokens) the centroids are fitted on a
uniform sample of at most `MAX_FIT_TOKENS` tokens drawn with the seed (K-means
of 64 clusters needs far fewer points than that to settle; fitting on all of
them cost memory that grew with the dataset: a float copy for scikit-learn and
another for the key's hash). The features are hashed block by block, and the
GPU algorithm assigns points to centroids in blocks, so neither holds an
n x K distance matrix or a second copy of the features.
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


MAX_FIT_TOKENS = 200_000
HASH_ROWS = 65536


def torch_kmeans(x: Tensor, clusters: int, iterations: int = 50, seed: int = 0, chunk: int = 65536) -> Tensor:
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
        assign = nearest(x, centres, chunk)
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
    kmeans.fit(x.numpy().astype(np.float32, copy=False))
    return torch.from_numpy(kmeans.cluster_centers_).float()


def nearest(x: Tensor, centroids: Tensor, chunk: int = 65536) -> Tensor:
    """Nearest centroid of every row -> [n] long, `chunk` rows at a time (memory chunk x K)."""
    return torch.cat([torch.cdist(x[k : k + chunk], centroids).argmin(1) for k in range(0, len(x), chunk)])


assign = nearest


def fit_sample(n: int, limit: int, seed: int) -> Tensor | None:
    """Sorted indices of a uniform sample of `limit` of n rows drawn with `seed`; None when n <= limit."""
    if n <= limit:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:limit].sort().values


def features_digest(features: Tensor) -> str:
    """SHA-256 of the features' bytes (row-major), read `HASH_ROWS` rows at a time: no copy of the whole."""
    digest = hashlib.sha256()
    for k in range(0, len(features), HASH_ROWS):
        digest.update(np.ascontiguousarray(features[k : k + HASH_ROWS].numpy()).data)
    return digest.hexdigest()


def kmeans_key(features: Tensor, clusters: int, seed: int, device: str, limit: int = MAX_FIT_TOKENS) -> str:
    """What the centroids depend on: the features' bytes, K, the seed, the algorithm, the sample size
    and the code."""
    import sklearn

    algorithm = f"torch-{torch.__version__}" if device.startswith("cuda") else f"sklearn-{sklearn.__version__}"
    code = code_digest(project_modules([Path(__file__)]))
    sample = min(limit, len(features))
    keyed = [features_digest(features), list(features.shape), str(features.dtype), clusters, seed, algorithm, code]
    keyed.append(sample)
    return hashlib.sha256(json.dumps(keyed).encode()).hexdigest()


def object_clusters(
    store: GraphStore,
    clusters: int,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    limit: int = MAX_FIT_TOKENS,
) -> Tensor:
    """K-means centroids of a store's object token features (fitted on a seeded sample of at most
    `limit` of them), from the cache when computed before."""
    features = store.nodes["object/x"].cpu()
    key = kmeans_key(features, clusters, seed, device, limit)
    path = Path(cache_dir or default_cache_dir()) / "kmeans" / f"{key[:20]}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a broken file is recomputed, never used
            LOG.warning("k-means cache %s is unreadable; recomputing", path)
    sample = fit_sample(len(features), limit, seed)
    fitted = features if sample is None else features[sample]
    LOG.info("k-means: %d clusters over %d of %d object tokens", clusters, len(fitted), len(features))
    centroids = fit_kmeans(fitted, clusters, seed, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(centroids, tmp)
    return centroids
