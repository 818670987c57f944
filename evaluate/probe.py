"""Linear probes on frozen embeddings: `python -m evaluate.probe --checkpoint ...`.

A logistic regression (scikit-learn) is fitted on the frozen features of
training graphs and scored on test graphs, at two levels, with the labels the
dataset has:

- image level: the graph embedding -> the category of the image's largest object;
- object-token level: each object token's output of the transformer -> its category.

The graphs are the checkpoint's run's: every data flag defaults to the run's
(evaluate.run_config), so the probe fits on the run's training split and scores
its test split; --train-size/--val-size take fewer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from data.cache import BadItem
from data.datasets import GraphDataset
from data.loader import GraphLoader
from data.sources import open_dataset
from evaluate.run_config import add_run_data_arguments, run_params, settings_from_run
from models import GraphCLIP
from models.checkpoint import load_checkpoint, model_from_checkpoint


@torch.no_grad()
def frozen_features(model: GraphCLIP, dataset: GraphDataset, batch_size: int = 256):
    """(image features [G, D], image labels [G], object features [n, C], object labels [n]); -1 = no label."""
    model.eval()
    images, image_labels, objects, object_labels = [], [], [], []
    for batch in GraphLoader(dataset, batch_size):
        encoder = model.graph_encoder
        dense, valid, index = encoder.encode_tokens(batch)
        images.append(encoder.pool_tokens(dense, valid))
        store = batch["object"]
        objects.append(dense.reshape(-1, dense.size(-1))[index[: store.num_nodes]])
        object_labels.append(store.label)
        labels = torch.full((batch.num_graphs,), -1, dtype=torch.long)
        for g in range(batch.num_graphs):
            members = (store.batch == g).nonzero().flatten()
            if len(members):
                labels[g] = store.label[members[store.area[members].argmax()]]
        image_labels.append(labels)
    return torch.cat(images), torch.cat(image_labels), torch.cat(objects), torch.cat(object_labels)


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor) -> float:
    """Accuracy of a logistic regression fitted on the labelled training rows."""
    keep_train, keep_test = train_y >= 0, test_y >= 0
    if keep_train.sum() == 0 or keep_test.sum() == 0 or len(train_y[keep_train].unique()) < 2:
        raise ValueError("the probe needs labelled examples of at least two classes")
    classifier = LogisticRegression(max_iter=2000)
    classifier.fit(train_x[keep_train].numpy(), train_y[keep_train].numpy())
    return float((classifier.predict(test_x[keep_test].numpy()) == test_y[keep_test].numpy()).mean())


def run_probe(model: GraphCLIP, train: GraphDataset, test: GraphDataset) -> dict[str, float]:
    """Probe accuracies, and the share of the commonest image label as the floor to beat."""
    if train.graph_type == "homo":
        raise ValueError("the probes need object tokens; homogeneous graphs have none")
    tr, te = frozen_features(model, train), frozen_features(model, test)
    labelled = te[1][te[1] >= 0]
    result = {
        "image_probe_acc": probe_accuracy(tr[0], tr[1], te[0], te[1]),
        "image_majority": float(np.bincount(labelled.numpy()).max() / len(labelled)),
    }
    if (tr[3] >= 0).any():  # patch grids carry no object labels
        result["object_probe_acc"] = probe_accuracy(tr[2], tr[3], te[2], te[3])
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(
        prog="python -m evaluate.probe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--output", type=Path, help="JSON file (default: next to the checkpoint)")
    add_run_data_arguments(parser)
    args = parser.parse_args(argv)
    try:
        state = load_checkpoint(args.checkpoint)
        settings = settings_from_run(parser, argv, args, *run_params(state, args.checkpoint))
        model = model_from_checkpoint(state)
        if model.config.vision:
            raise ValueError("the probes read graph tokens; this checkpoint has a pixel model")
        options = settings.options()
        result = run_probe(model, open_dataset(options, "train"), open_dataset(options, "test"))
    except (FileNotFoundError, ValueError, BadItem) as error:
        raise SystemExit(f"error: {error}") from None
    if settings.report():
        print(settings.report())
    print("  ".join(f"{k} {100 * v:.1f}%" for k, v in result.items()))
    output = args.output or args.checkpoint.with_name("probe.json")
    output.write_text(json.dumps({**result, **settings.record()}, indent=2) + "\n")
    print(f"wrote {output}")
    return result


if __name__ == "__main__":
    main()
