import numpy as np
import pytest
import torch

from data.synthetic import make_scene


@pytest.fixture
def scenes():
    """Eight deterministic synthetic scenes."""
    return [make_scene(0, "train", index) for index in range(8)]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
