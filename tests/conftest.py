import numpy as np
import pytest
import torch

from data.synthetic import make_scene


@pytest.fixture
def scenes():
    """Eight deterministic synthetic scenes."""
    return [make_scene(0, "train", index) for index in range(8)]


@pytest.fixture(autouse=True, scope="session")
def _private_graph_cache(tmp_path_factory):
    """Runs that use the default cache write into a temporary folder, not ~/.cache."""
    import os

    os.environ["SEMGRAPH_CACHE"] = str(tmp_path_factory.mktemp("graph-cache"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
