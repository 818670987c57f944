"""Train a graph-text CLIP model: `python train/run.py --graph-type hetero`.

The flags, parsed and checked (train/flags.py; a resume by train/resume.py),
then a call into the trainer (train/trainer.py). The entry point is
`main(argv) -> dict`, so a test can run a whole training by calling it. A run
writes its directory (params.json, out.log, results.jsonl, checkpoints/) and
returns the last validation metrics.
Several processes: `torchrun --nproc-per-node N train/run.py ...`.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

# PyG scripts a few modules at import; torch 2.14 warns for each. Not ours to fix.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

from data.cli import add_data_arguments, check_drop_edge_types
from data.negatives import NEGATIVE_KINDS
from models import BIAS_MODES, DEFAULT_CONFIG
from models.attention import BIAS_INITS
from models.graph_encoder import POOLS, RELATION_FEATURES
from models.relation_text import DEFAULT_RELATION_TEXT_MODEL
from models.token_norm import TOKEN_NORMS
from train.config import explicit_flags, merge, read_config
from train.flags import validate
from train.resume import check_resume, resume_checkpoint
from train.trainer import train

# Flags a resumed run never takes from its params.json (the others come from it unless given again).
RUN_LOCAL_FLAGS = {"resume", "out", "config"}
# What params.json records beside the flags.
PARAMS_EXTRAS = {"model", "world_size", "schema_version"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train/run.py",
        description="Train an edge-biased graph transformer on image graphs against an open_clip text tower "
        "(contrastive, CLIP-style). The default trains the hetero model on the embedded synthetic world.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="YAML/JSON file of flag values; command-line flags override it")
    add_data_arguments(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--model-config", default=DEFAULT_CONFIG, help="a config name in models/configs or a JSON path")
    model.add_argument(
        "--edge-bias", choices=BIAS_MODES, default=None, help="attention bias mode (default: the config's)"
    )
    model.add_argument(
        "--edge-bias-init",
        choices=BIAS_INITS,
        default="ranks",
        help="where the learned bias starts: from the ranks (docs/design.md) or at zero",
    )
    model.add_argument(
        "--readout",
        choices=POOLS,
        default=None,
        help="how the graph's tokens become the embedding (config field `pool`, default: the config's): "
        "a learned attention query, a masked mean, or a learned CLS token prepended (the seed paper's)",
    )
    model.add_argument(
        "--relation-features",
        choices=RELATION_FEATURES,
        default="onehot",
        help="what a relation token says of its predicate: the one-hot of the vocabulary, or the text "
        "embedding of its name (the seed paper's), each predicate embedded once by --relation-text-model",
    )
    model.add_argument(
        "--relation-text-model",
        default=DEFAULT_RELATION_TEXT_MODEL,
        help="the open_clip model whose text tower embeds predicate names (config only; weights from "
        "--relation-text-checkpoint)",
    )
    model.add_argument(
        "--relation-text-checkpoint",
        type=Path,
        help="local weights of that text tower (a CLIP checkpoint or a text-tower state dict); "
        "without one the tower is untrained and a warning says so",
    )
    model.add_argument(
        "--token-norm",
        choices=TOKEN_NORMS,
        default="none",
        help="normalise each graph's tokens before the transformer: MoTo, layer, batch or none",
    )
    model.add_argument(
        "--vision",
        help="a pixel model as the image side: timm:NAME (e.g. timm:vit_small_patch16_224) or vit:paper "
        "(the seed authors' baseline: a ViT of width 512, 8 layers, 8 heads)",
    )
    model.add_argument("--vision-image-size", type=int, default=96, help="pixel side for --vision")
    model.add_argument("--text-model", help="an open_clip model name whose text tower to use (e.g. ViT-B-32)")
    model.add_argument(
        "--text-checkpoint", type=Path, help="local weights: a CLIP checkpoint or a text-tower state dict"
    )
    model.add_argument("--freeze-text", action="store_true", help="keep the text tower fixed")
    model.add_argument("--text-lr-scale", type=float, default=1.0, help="the text tower's learning rate, relative")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument(
        "--objective",
        choices=("clip", "mim"),
        default="clip",
        help="clip: contrastive against captions; mim: masked-token pretraining (ClusterMIM)",
    )
    optim.add_argument(
        "--hard-negatives",
        type=negative_kinds,
        default=[],
        metavar="KINDS",
        help="comma-separated: relation,attribute,order: certainly-false captions made from each "
        "scene's graph, added as extra texts for its image (NegCLIP); synthetic world only",
    )
    optim.add_argument(
        "--hard-negative-images",
        action="store_true",
        help="add each scene's twin, re-drawn with one relation reversed (its arrow turned round, or two "
        "objects in each other's places), as an extra image with its own caption, so the image side is "
        "pushed too (Winoground's image score); synthetic world only",
    )
    optim.add_argument(
        "--twins-per-scene",
        type=int,
        default=1,
        metavar="K",
        help="with --hard-negative-images: make up to K twins of each scene, each reversing another relation "
        "(a scene with an arrow then also gets spatial twins); each batch still carries one twin per scene, "
        "drawn among its twins every epoch",
    )
    optim.add_argument(
        "--twin-caption-share",
        type=float,
        default=0.0,
        metavar="P",
        help="with --hard-negative-images: for this share of the scenes whose twin is in a batch (drawn per scene "
        "and epoch), the scene's caption is the relation its twin reverses, so the batch holds both tellings, "
        "each true of one image and false of the other (default 0: a caption drawn from the scene's own)",
    )
    optim.add_argument(
        "--twin-caption-mode",
        choices=("replace", "extra"),
        default="replace",
        help="with --twin-caption-share: the telling replaces the scene's drawn caption (replace), or is one more "
        "text whose image is the scene, scored against every image, the twin among them (extra: the drawn caption "
        "stays)",
    )
    optim.add_argument("--tokenprop-weight", type=float, default=0.0, help="TokenProp reconstruction loss weight")
    optim.add_argument("--mim-weight", type=float, default=0.0, help="masked-token loss weight beside the CLIP loss")
    optim.add_argument("--mim-clusters", type=int, default=64, help="K of the K-means token targets")
    optim.add_argument("--mim-ratio", type=float, default=0.75, help="share of object tokens hidden")
    optim.add_argument("--init-from", type=Path, help="start the graph encoder from a checkpoint (e.g. MIM-pretrained)")
    optim.add_argument("--epochs", type=int, default=20)
    optim.add_argument("--batch-size", type=int, default=256, help="graphs per step in each process")
    optim.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    optim.add_argument("--weight-decay", type=float, default=0.1)
    optim.add_argument("--warmup-steps", type=int, default=50, help="linear warm-up, then cosine decay")
    optim.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0: off)")
    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="seed of the synthetic world and of training")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto picks CUDA when present")
    run.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="autocast precision (default: bf16 on CUDA, fp32 on CPU); fp16 adds a grad scaler",
    )
    run.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the dense parts: the graph encoder's transformer blocks (tokens padded to a power "
        "of two, one compilation per size), the text tower, a --vision pixel model; gathers and scatters "
        "stay eager",
    )
    run.add_argument(
        "--loader-workers",
        type=non_negative,
        default=0,
        metavar="N",
        help="processes making the training batches (collation, captions, tokenization) in a DataLoader; "
        "0: the main process. The batches are the same whatever N",
    )
    run.add_argument(
        "--log-every",
        type=int,
        default=50,
        metavar="N",
        help="read the running losses from the device every N steps (the progress bar updates then); "
        "no other step waits for the device",
    )
    run.add_argument(
        "--data-on-device",
        action="store_true",
        help="keep every training graph and its tokenized captions on the device; batches are "
        "assembled there by index, with no per-graph Python work",
    )
    run.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<graph-type>-<time>)")
    run.add_argument("--resume", help="'latest' (the run in --out) or a checkpoint path: continue exactly")
    run.add_argument("--save-every-steps", type=int, default=0, help="also checkpoint every N steps (0: per epoch)")
    run.add_argument(
        "--keep-step-checkpoints",
        type=non_negative,
        default=2,
        metavar="N",
        help="keep the newest N step_*.pt files of --save-every-steps, delete older ones (0: keep all); "
        "epoch checkpoints and latest.pt are always kept",
    )
    run.add_argument("--report-to", choices=("none", "tensorboard"), default="none", help="also log to TensorBoard")
    run.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return parser


def parse_args(argv: list[str] | None, validated: bool = True) -> tuple[argparse.Namespace, Path | None]:
    """Flags from defaults, --config, a resumed run's params.json and the command line; with
    `validated` False the flag set is resolved but not checked (files it names need not exist)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    explicit = explicit_flags(parser, argv)
    try:
        if args.config:
            merge(parser, args, explicit, read_config(args.config), str(args.config), ignore={"config"} | PARAMS_EXTRAS)
        checkpoint = None
        if args.resume:
            checkpoint = resume_checkpoint(args)
            params_path = checkpoint.parents[1] / "params.json"
            params = read_config(params_path)
            saved = {k: v for k, v in params.items() if k in vars(args)}
            merge(parser, args, explicit | RUN_LOCAL_FLAGS, saved, str(params_path))
            args.out = checkpoint.parents[1]
            check_resume(args, params, params_path, checkpoint)
        try:
            args.drop_edge_types = check_drop_edge_types(args.drop_edge_types, args.edge_schema)
        except ValueError as error:
            raise ValueError(f"--drop-edge-types: {error}") from None
        if args.relation_features == "text" and args.graph_type == "homo":
            raise ValueError("--relation-features text reads each relation token's predicate: use hetero graphs")
        if validated:
            validate(args)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    return args, checkpoint


def non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {number}")
    return number


def negative_kinds(value: str) -> list[str]:
    kinds = [kind.strip() for kind in value.split(",") if kind.strip()]
    unknown = [kind for kind in kinds if kind not in NEGATIVE_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown hard negatives {unknown}; valid: {', '.join(NEGATIVE_KINDS)}")
    return kinds


def main(argv: list[str] | None = None) -> dict:
    """Train as the command line says; return the last validation metrics."""
    args, checkpoint = parse_args(argv)
    return train(args, checkpoint)


def cli() -> None:
    main()


if __name__ == "__main__":
    main()
