"""A rehearsal of the paper's COCO run on this machine, at full size or a fraction of it.

    python bench/rehearse_coco.py [--folder DIR] [--scale 1.0] [--workers 0,1,2]

Stages, each resumable after a kill and each (but the data) in its own process,
whose peak resident memory is read from the kernel when it ends (`os.wait4`:
the largest process of the stage, a build's workers included):

1. data: a COCO-format train2017 (118,287 images of about 640x480, polygons,
   compressed and uncompressed RLE, five captions each) and val2017 (5,000),
   deterministic from --seed, under DIR/coco. An image already written whole is
   kept, a torn one rewritten.
2. build-wN: the training graphs' cache built by `python -m data.build_shards`
   with N workers, each N into its own cache DIR/cache-wN (resumes at shard
   granularity); images/s, per-image cost, worker start-up, cache size on disk.
3. build-val, load, load-mmap: the val graphs; the train cache loaded into memory,
   and consolidated + mapped (`--mmap`).
4. train-memory, train-mmap: one epoch of the default model from the cache
   (`train/run.py --epochs 1`, a checkpoint every --save-every-steps, resumed with
   `--resume latest` after a kill): samples/s, data wait, time to first step.
5. evaluate: retrieval on the val split (`python -m evaluate.retrieval`).

A finished stage is recorded in DIR/state.json and skipped when run again
(`--redo STAGE` runs one again). Writes --results (default
bench/results/rehearsal.json) and prints a markdown table, with the 100-epoch
schedule extrapolated to the full train2017 on this machine, and on one GPU from
bench/results/gpu.json when that file exists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.coco_like import write_coco_split  # noqa: E402
from data.atomic import write_text_atomic  # noqa: E402

TRAIN_IMAGES, VAL_IMAGES = 118_287, 5_000
PAPER_EPOCHS = 100
FULL_SIZE_BYTES = 18 * 2**30  # measured at --scale 0.01, x100: images 8.6 GB, three caches and a map 8.5, runs ~1
FIRST_STEP = re.compile(rb"epoch 1/1[^\r\n]*?\|\s*(\d+)/(\d+)")


def default_folder() -> Path:
    """$SEMGRAPH_DATA/coco-rehearsal, else ~/semgraph-rehearsal: outside the repository."""
    if os.environ.get("SEMGRAPH_DATA"):
        return Path(os.environ["SEMGRAPH_DATA"]) / "coco-rehearsal"
    return Path.home() / "semgraph-rehearsal"


def folder_bytes(path: Path, skip: tuple[str, ...] = ()) -> int:
    """Bytes of the files under `path`, leaving out sub-folders named in `skip`."""
    total = 0
    for entry in path.rglob("*"):
        if entry.is_file() and not any(part in skip for part in entry.relative_to(path).parts):
            total += entry.stat().st_size
    return total


def run_stage(command: list[str], log: Path, watch_first_step: bool = False, echo: bool = True) -> dict:
    """Run a stage's command in its own process: stdout to `log`, stderr (progress bars) to the
    log too and, with `echo`, to this terminal; return its wall seconds, exit status, peak resident
    memory (MiB) and, when asked, the seconds until the epoch's progress bar first showed a
    finished step (the bar is read from the stage's stderr, shown here or not)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    began = time.perf_counter()
    first_step: dict = {}
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, cwd=REPO, env=env)

        def relay() -> None:
            seen = b""
            while chunk := os.read(process.stderr.fileno(), 65536):
                if echo:
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.flush()
                out.write(chunk)
                if watch_first_step and not first_step:
                    seen = (seen + chunk)[-4096:]
                    done = [int(m.group(1)) for m in FIRST_STEP.finditer(seen) if int(m.group(1)) > 0]
                    if done:
                        first_step.update(seconds=time.perf_counter() - began, steps=min(done))

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        _, status, usage = os.wait4(process.pid, 0)
        reader.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    result = {
        "wall_s": time.perf_counter() - began,
        "returncode": process.returncode,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
    }
    if first_step:
        result["first_step_s"], result["first_step_seen_at_step"] = first_step["seconds"], first_step["steps"]
    return result


def checked(stage: str, result: dict, log: Path) -> dict:
    if result["returncode"] != 0:
        raise SystemExit(f"error: stage {stage} failed (exit {result['returncode']}); its log: {log}")
    return result


class Rehearsal:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.folder = args.folder.expanduser().resolve()
        self.data = self.folder / "coco"
        self.state_path = self.folder / "state.json"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        wanted = {"scale": args.scale, "seed": args.seed}
        if self.state.get("config", wanted) != wanted:
            raise SystemExit(
                f"error: {self.folder} holds a rehearsal at {self.state['config']}, not {wanted}: "
                "choose another --folder"
            )
        self.state["config"] = wanted
        self.train_count = max(1, round(TRAIN_IMAGES * args.scale))
        self.val_count = max(1, round(VAL_IMAGES * args.scale))

    def check_disk(self) -> None:
        """Refuse to start when the folder's disk cannot hold what the rehearsal still has to write."""
        needed = FULL_SIZE_BYTES * self.args.scale - folder_bytes(self.folder)
        free = shutil.disk_usage(self.folder).free
        if needed > free:
            raise SystemExit(
                f"error: {self.folder} has {free / 2**30:.1f} GiB free and the rehearsal at scale "
                f"{self.args.scale} needs about {needed / 2**30:.1f} GiB more: choose another --folder"
            )

    def save(self) -> None:
        write_text_atomic(self.state_path, json.dumps(self.state, indent=1))

    def stage(self, name: str, work) -> dict:
        if name in self.state.get("stages", {}) and name not in self.args.redo:
            print(f"[{name}] done before; kept (--redo {name} runs it again)", file=sys.stderr)
            return self.state["stages"][name]
        print(f"[{name}] ...", file=sys.stderr)
        result = work()
        self.state.setdefault("stages", {})[name] = result
        self.save()
        return result

    @property
    def echo(self) -> bool:
        """Whether the stages' progress bars reach this terminal (they always reach the logs)."""
        return not self.args.no_progress

    @property
    def cache(self) -> str:
        """The cache the later stages read: the one built with the first of --workers (all are the same graphs)."""
        return f"cache-w{self.args.workers[0]}"

    def data_flags(self, cache: str) -> list[str]:
        return [
            "--dataset", "coco", "--coco-root", str(self.data), "--split", "train2017", "--val-split", "val2017",
            "--cache-dir", str(self.folder / cache),
        ]  # fmt: skip

    def generate(self, split: str, count: int) -> dict:
        began = time.perf_counter()
        counts = write_coco_split(self.data, split, count, self.args.seed, progress=not self.args.no_progress)
        seconds = time.perf_counter() - began
        return {"images": count, **counts, "seconds": seconds, "images_per_s": counts["written"] / max(seconds, 1e-9)}

    def build(self, workers: int, split: str = "train") -> dict:
        cache = f"cache-w{workers}"
        log = self.folder / "logs" / f"build-{split}-w{workers}.log"
        report_path = self.folder / "logs" / f"build-{split}-w{workers}.json"
        command = [
            sys.executable, "-m", "data.build_shards", *self.data_flags(cache), "--build-split", split,
            "--workers", str(workers), "--output", str(report_path),
        ]  # fmt: skip
        if not self.args.no_progress:
            command.append("--progress")
        result = checked(f"build {split} w{workers}", run_stage(command, log, echo=self.echo), log)
        report = json.loads(report_path.read_text())
        entry = Path(report["folder"])
        built = report["built_items"]
        result.update(report)
        result["cache_bytes"] = folder_bytes(entry, skip=("mmap",))
        result["resumed"] = report["reused_shards"] > 0
        if built:
            result["per_image_s"] = report["build_s"] * max(workers, 1) / built
            result["images_per_s_building"] = built / report["build_s"]
            result["images_per_s_wall"] = built / result["wall_s"]
        return result

    def load(self, mmap: bool) -> dict:
        log = self.folder / "logs" / f"load{'-mmap' if mmap else ''}.log"
        code = (
            "import sys, time; from data.cli import add_data_arguments, data_options; import argparse;"
            "p = argparse.ArgumentParser(); add_data_arguments(p); a = p.parse_args(sys.argv[1:]);"
            "from data.sources import open_dataset; t = time.perf_counter();"
            "d = open_dataset(data_options(a), 'train'); print('graphs', len(d), 'seconds', time.perf_counter() - t)"
        )
        flags = self.data_flags(self.cache) + (["--mmap"] if mmap else [])
        result = checked("load", run_stage([sys.executable, "-c", code, *flags], log, echo=self.echo), log)
        if mmap:
            entries = [p for p in (self.folder / self.cache).iterdir() if (p / "mmap").is_dir()]
            result["mmap_bytes"] = sum(folder_bytes(p / "mmap") for p in entries)
        return result

    def train(self, mmap: bool) -> dict:
        name = "mmap" if mmap else "memory"
        run = self.folder / "runs" / name
        log = self.folder / "logs" / f"train-{name}.log"
        command = [
            sys.executable, "train/run.py", *self.data_flags(self.cache), "--epochs", "1", "--out", str(run),
            "--save-every-steps", str(self.args.save_every_steps), "--keep-step-checkpoints", "1",
            *self.args.train_args.split(),
        ]  # fmt: skip
        if mmap:
            command.append("--mmap")  # the bar stays on (its first finished step is timed), shown with `echo`
        if f"train-{name}" in self.args.redo and run.is_dir():  # asked again: a fresh epoch, not the last one resumed
            shutil.rmtree(run)
        if (run / "checkpoints" / "latest.pt").is_file():
            command += ["--resume", "latest"]
        elif run.is_dir():  # killed before its first checkpoint: nothing to resume, start it again
            shutil.rmtree(run)
        result = checked(f"train {name}", run_stage(command, log, watch_first_step=True, echo=self.echo), log)
        records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]
        record = records[-1]
        result["resumed"] = "--resume" in command
        for key in ("samples_per_s", "data_wait", "epoch_seconds", "train_loss", "t2i_R@1", "i2t_R@1"):
            result[key] = record.get(key)
        params = json.loads((run / "params.json").read_text())
        result["batch_size"] = params.get("batch_size")
        return result

    def evaluate(self) -> dict:
        log = self.folder / "logs" / "evaluate.log"
        output = self.folder / "logs" / "retrieval.json"
        checkpoint = self.folder / "runs" / "memory" / "checkpoints" / "latest.pt"
        command = [
            sys.executable, "-m", "evaluate.retrieval", "--checkpoint", str(checkpoint), "--eval-split", "val",
            "--output", str(output),
        ]  # fmt: skip
        result = checked("evaluate", run_stage(command, log, echo=self.echo), log)
        metrics = json.loads(output.read_text())
        result.update({k: v for k, v in metrics.items() if "R@" in k or "rank" in k or k == "images"})
        return result

    def run(self) -> dict:
        self.check_disk()
        stages = {}
        stages["data-train"] = self.stage("data-train", lambda: self.generate("train2017", self.train_count))
        stages["data-val"] = self.stage("data-val", lambda: self.generate("val2017", self.val_count))
        for workers in self.args.workers:
            stages[f"build-w{workers}"] = self.stage(f"build-w{workers}", lambda w=workers: self.build(w))
        stages["build-val"] = self.stage("build-val", lambda: self.build(self.args.workers[0], "val"))
        stages["load"] = self.stage("load", lambda: self.load(False))
        stages["load-mmap"] = self.stage("load-mmap", lambda: self.load(True))
        stages["train-memory"] = self.stage("train-memory", lambda: self.train(False))
        stages["train-mmap"] = self.stage("train-mmap", lambda: self.train(True))
        stages["evaluate"] = self.stage("evaluate", self.evaluate)
        return self.summarise(stages)

    def summarise(self, stages: dict) -> dict:
        summary = {
            "scale": self.args.scale,
            "seed": self.args.seed,
            "train_images": self.train_count,
            "val_images": self.val_count,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "train_args": self.args.train_args,
            "stages": stages,
            "extrapolated": extrapolate(stages, self.train_count, self.val_count),
        }
        summary["extrapolated"].update(gpu_extrapolation(REPO / "bench" / "results" / "gpu.json"))
        return summary


def gpu_extrapolation(path: Path) -> dict:
    """The paper's 100 epochs of train2017 on one GPU, from `bench/bench_gpu.py`'s whole training
    step (its model at ViT-S size, batches on the device) in each mode it measured; {} without the file."""
    if not path.is_file():
        return {}
    out = {}
    for mode, figures in json.loads(path.read_text()).items():
        step = figures.get("whole_step") if isinstance(figures, dict) else None
        if step and step.get("samples_per_s"):
            out[f"gpu_{mode}_samples_per_s"] = step["samples_per_s"]
            out[f"gpu_{mode}_100_epochs_hours"] = PAPER_EPOCHS * TRAIN_IMAGES / step["samples_per_s"] / 3600
    return out


def extrapolate(stages: dict, train_count: int, val_count: int) -> dict:
    """Full-size figures from the measured ones: the build at 16 and 64 workers from the one-process
    per-image cost and the workers' start-up; the paper's 100 epochs from samples/s and validation."""
    out = {}
    builds = sorted((int(k.removeprefix("build-w")), s) for k, s in stages.items() if re.fullmatch(r"build-w\d+", k))
    # the per-image cost to one process: the serial build's, else that of the fewest workers measured
    serial = builds[0][1] if builds else {}
    per_image = serial.get("per_image_s")
    start_ups = [s.get("start_workers_s", 0.0) for workers, s in builds if workers > 0]
    if per_image:
        start_up = max(start_ups, default=0.0)
        setup = serial.get("setup_s", 0.0) * TRAIN_IMAGES / train_count  # reading the annotations grows with them
        shards = -(-TRAIN_IMAGES // 512)
        for workers in (1, 2, 16, 64):
            seconds = setup + (start_up if workers > 1 else 0.0) + TRAIN_IMAGES * per_image / min(workers, shards)
            out[f"build_full_w{workers}_hours"] = seconds / 3600
        out["build_per_image_ms"] = 1000 * per_image
        out["build_worker_start_up_s"] = start_up
    for name in ("train-memory", "train-mmap"):
        train = stages.get(name, {})
        if train.get("samples_per_s"):
            train_seconds = train_count / train["samples_per_s"]
            validation = max(train.get("epoch_seconds", train_seconds) - train_seconds, 0.0)
            epoch = TRAIN_IMAGES / train["samples_per_s"] + validation * VAL_IMAGES / val_count
            out[f"{name}_epoch_full_hours"] = epoch / 3600
            out[f"{name}_100_epochs_days"] = PAPER_EPOCHS * epoch / 86400
    return out


def markdown(summary: dict) -> str:
    stages, extra = summary["stages"], summary["extrapolated"]

    def cell(value, digits=1) -> str:
        return "—" if value is None else f"{value:,.{digits}f}"

    rows = [
        f"Rehearsal at scale {summary['scale']} ({summary['train_images']:,} train / {summary['val_images']:,} val "
        f"images), {summary['machine']['cpus']} CPUs",
        "",
        "| stage | wall s | peak RSS MiB | figures |",
        "|---|---|---|---|",
    ]
    for name, s in stages.items():
        if name.startswith("data"):
            figures = (
                f"{s['written']:,} written, {s['kept']:,} kept, {s['torn']} torn; {cell(s['images_per_s'])} images/s"
            )
            rows.append(f"| {name} | {cell(s['seconds'])} | — | {figures} |")
            continue
        if name.startswith("build"):
            figures = (
                f"{cell(s.get('images_per_s_building'))} images/s building ({cell(s.get('images_per_s_wall'))} with "
                f"start-up), {cell(1000 * s['per_image_s'] if s.get('per_image_s') else None, 0)} ms/image/process, "
                f"workers up in {cell(s.get('start_workers_s'))} s, cache {s['cache_bytes'] / 2**20:,.1f} MiB"
                + (" (resumed)" if s.get("resumed") else "")
            )
        elif name.startswith("load"):
            figures = f"mapped files {s['mmap_bytes'] / 2**20:,.1f} MiB" if "mmap_bytes" in s else "into memory"
        elif name.startswith("train"):
            figures = (
                f"{cell(s.get('samples_per_s'))} samples/s, data wait {cell(100 * (s.get('data_wait') or 0))} %, "
                f"bar first at step {s.get('first_step_seen_at_step', '—')} after {cell(s.get('first_step_s'))} s"
                + (" (resumed)" if s.get("resumed") else "")
            )
        else:
            figures = (
                f"t2i R@1 {cell(100 * s['t2i_R@1'])} %, i2t R@1 {cell(100 * s['i2t_R@1'])} % on {s['images']} images"
            )
        rows.append(f"| {name} | {cell(s['wall_s'])} | {cell(s['peak_rss_mib'], 0)} | {figures} |")
    rows += ["", "| extrapolated to train2017 (118,287 images) | value |", "|---|---|"]
    rows += [f"| {key} | {cell(value, 2)} |" for key, value in extra.items()]
    return "\n".join(rows)


def worker_list(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=default_folder(), help="where data, caches and runs go")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of train2017/val2017's size (0.01: quick)")
    parser.add_argument("--seed", type=int, default=0, help="the generated data's seed")
    parser.add_argument(
        "--workers", type=worker_list, default=[0, 1, 2],
        help="cache-build worker counts, each into its own cache; the later stages read the first one's",
    )  # fmt: skip
    parser.add_argument("--save-every-steps", type=int, default=50, help="training checkpoints (a kill resumes)")
    parser.add_argument("--train-args", default="", help="more train/run.py flags, e.g. '--threads 1 --device cpu'")
    parser.add_argument("--redo", action="append", default=[], metavar="STAGE", help="run a finished stage again")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "rehearsal.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if not 0 < args.scale <= 1:
        raise SystemExit("error: --scale must be in (0, 1]")
    summary = Rehearsal(args).run()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results, json.dumps(summary, indent=2) + "\n")
    print(markdown(summary))
    print(f"\nwrote {args.results}")
    return summary


if __name__ == "__main__":
    main()
