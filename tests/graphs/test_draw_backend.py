"""Importing and using graphs.draw leaves the user's matplotlib backend as it was."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
import matplotlib
import numpy as np
before = matplotlib.get_backend()
from graphs import build_graph
from graphs.draw import save_graph_picture
after_import = matplotlib.get_backend()
masks = np.zeros((2, 32, 32), dtype=bool)
masks[0, 2:10, 2:10] = masks[1, 20:28, 20:28] = True
save_graph_picture(np.zeros((32, 32, 3), np.uint8), build_graph(np.zeros((32, 32, 3), np.uint8), masks), sys.argv[1])
print(before, after_import, matplotlib.get_backend())
"""


def test_importing_and_drawing_keep_the_users_backend(tmp_path):
    """The user chose the svg backend: graphs.draw neither switches it at import nor when it draws,
    and still writes a PNG."""
    picture = tmp_path / "graph.png"
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(picture)], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "svg", "svg"]
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_importing_the_chart_makers_keeps_the_users_backend(tmp_path):
    """evaluate.plot, evaluate.ablate and evaluate.seed_stats draw on Figure objects too."""
    script = (
        "import matplotlib\n"
        "import evaluate.plot, evaluate.ablate, evaluate.seed_stats\n"
        "evaluate.plot.plot_curves([{'epoch': 1, 'train_loss': 2.0, 't2i_R@1': 0.1},"
        " {'epoch': 2, 'train_loss': 1.0, 't2i_R@1': 0.2}], 'curves.png')\n"
        "print(matplotlib.get_backend(), open('curves.png', 'rb').read(4))\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "b'\\x89PNG'"]
