"""`digits` command line: train | evaluate | predict | read | serve | ui | up | migrate | models |
retrain | trainer."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digits.config import SHIPPED_WEIGHTS

if TYPE_CHECKING:
    from digits.predict import Predictor

log = logging.getLogger(__name__)

# What the `train` extra brings: a command that needs one of them says so rather than failing.
TRAIN_MODULES = {"torch", "onnx", "matplotlib"}


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mnist-dir",
        type=Path,
        default=None,
        help="folder with the four canonical MNIST .gz files (read-only); default: DIGITS_MNIST_DIR or download",
    )


def cmd_train(args: argparse.Namespace) -> int:
    from digits.checkpoint import load
    from digits.training.config import TrainConfig
    from digits.training.train import fit

    config = TrainConfig(dry_run=args.dry_run, seed=args.seed)
    if args.epochs is not None:
        config.epochs = args.epochs
    if args.synthetic is not None:
        config.synthetic = args.synthetic
    if args.max_lr is not None:
        config.max_lr = args.max_lr
    if args.pen_renders is not None:
        config.pen_renders = args.pen_renders
    if args.width is not None:
        config.width = args.width
    init = load(args.init) if args.init else None
    if init is not None and args.width not in (None, init.model_args["width"]):
        log.error("--width %d, but --init has width %d", args.width, init.model_args["width"])
        return 1
    result = fit(config, args.output, mnist_dir=args.mnist_dir, init=init)
    print(
        json.dumps(
            {
                "output": str(args.output),
                "version": result.version,
                "temperature": result.temperature,
                "val_accuracy": result.metrics["val_accuracy"],
                "train_seconds": result.metrics["train_seconds"],
            }
        )
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from digits.training.evaluate import evaluate

    report = evaluate(
        args.model or SHIPPED_WEIGHTS,
        report_dir=args.report_dir,
        mnist_dir=args.mnist_dir,
        canvas_n=args.canvas_n,
    )
    if args.json:
        print(json.dumps(report, separators=(",", ":")))
    else:
        print(
            f"MNIST test accuracy {report['accuracy']:.4f}  ECE {report['ece']:.4f}  n={report['n']}\n"
            + "\n".join(
                f"{name}: accuracy {r['accuracy']:.4f}  ECE {r['ece']:.4f}  "
                f"confident-wrong {r['confident_wrong']:.4f}  n={r['n']}"
                for name, r in report["canvas"].items()
            )
        )
    return 0


PREDICT_BATCH = 256


def _predict_lines(predictor: Predictor, files: Sequence[Path]) -> Iterator[dict[str, Any]]:
    """One JSON-able line per file, in order; a bad file never stops the batch."""
    import numpy as np

    from digits import decode, preprocess

    for start in range(0, len(files), PREDICT_BATCH):
        chunk = files[start : start + PREDICT_BATCH]
        results: list[dict[str, Any]] = []
        inputs, slots = [], []
        for path in chunk:
            line: dict[str, Any] = {
                "file": str(path),
                "digit": None,
                "confidence": None,
                "probabilities": None,
            }
            try:
                inputs.append(preprocess.to_model_input(path.read_bytes()))
                slots.append(len(results))
            except decode.EmptyImageError:
                line["status"] = "empty"
            except (decode.PreprocessError, OSError) as exc:
                line |= {"status": "error", "error": str(exc)}
            results.append(line)
        if inputs:
            for slot, prediction in zip(
                slots, predictor.predict_inputs(np.stack(inputs)), strict=True
            ):
                results[slot] |= prediction.as_dict()
        yield from results


def _predictor(model: Path | None) -> Predictor:
    """--model, or else the model the API serves."""
    from digits.api.holder import serving
    from digits.config import get_settings
    from digits.loop.registry import Registry
    from digits.predict import Predictor

    if model:
        return Predictor.from_checkpoint(model)
    settings = get_settings()
    return serving(settings, Registry.from_settings(settings))[0]()


def cmd_predict(args: argparse.Namespace) -> int:
    for line in _predict_lines(_predictor(args.model), args.files):
        if args.json:
            sys.stdout.write(json.dumps(line) + "\n")
        elif line["digit"] is not None:  # ok, uncertain or not_a_digit, with the best guess
            sys.stdout.write(
                f"{line['file']}: {line['digit']} ({line['confidence']:.1%}, {line['status']})\n"
            )
        else:
            sys.stdout.write(
                f"{line['file']}: {line['status']} {line.get('error', '')}".rstrip() + "\n"
            )
    sys.stdout.flush()
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    from digits.config import get_settings
    from digits.read.numbers import NumberReader, read_files

    reader = NumberReader(_predictor(args.model), max_digits=get_settings().max_number_digits)
    for line in read_files(reader, args.files):
        if args.json:
            sys.stdout.write(json.dumps(line) + "\n")
        elif line["number"] is not None:
            percent = round(100 * line["confidence"])
            sys.stdout.write(f"{line['file']}: {line['number']} ({line['status']}, {percent} %)\n")
        else:
            sys.stdout.write(
                f"{line['file']}: {line['status']} {line.get('error', '')}".rstrip() + "\n"
            )
    sys.stdout.flush()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from digits.api.ports import PortTakenError
    from digits.api.server import serve

    try:
        serve(host=args.host, port=args.port, workers=args.workers)
    except PortTakenError as exc:
        print(f"digits serve: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from digits.ui.launch import run

    if importlib.util.find_spec("streamlit") is None:
        log.error("digits ui needs Streamlit: pip install 'digits[ui]'")
        return 1
    run(args.port, args.host)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from digits.launcher import up

    return up() or 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from digits.config import get_settings
    from digits.db.migrate import upgrade_head

    upgrade_head(get_settings().resolved_database_url)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from digits.loop.cli import models_command

    return models_command(args)


def cmd_retrain(args: argparse.Namespace) -> int:
    from digits.loop.retrain import retrain_command

    return retrain_command(args)


def cmd_trainer(args: argparse.Namespace) -> int:
    from digits.config import get_settings
    from digits.loop.trainer import POLL_S, serve_jobs

    return serve_jobs(
        get_settings(), once=args.once, poll_s=args.poll or POLL_S, ready_file=args.ready_file
    )


def build_parser() -> argparse.ArgumentParser:
    from digits.config import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="digits", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on MNIST and synthetic drawings")
    _add_data_args(train)
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--synthetic", type=int, default=None, help="synthetic drawings to mix in")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--pen-renders", type=int, default=None, help="drawings of each real pen digit"
    )
    train.add_argument("--max-lr", type=float, default=None, help="peak of the one-cycle schedule")
    train.add_argument(
        "--width",
        type=int,
        default=None,
        help="channels of the first layer (default 32; --init keeps its own)",
    )
    train.add_argument(
        "--init", type=Path, default=None, help="start from this checkpoint (fine-tune)"
    )
    train.add_argument("--output", type=Path, default=Path("var/models/model.pt"))
    train.add_argument("--dry-run", action="store_true", help="one small pass (for CI)")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="evaluate a checkpoint and write its model card")
    _add_data_args(evaluate)
    evaluate.add_argument("--model", type=Path, default=None, help="default: the shipped weights")
    evaluate.add_argument("--report-dir", type=Path, default=Path("var/report"))
    evaluate.add_argument(
        "--canvas-n", type=int, default=2000, help="drawings per canvas benchmark set"
    )
    evaluate.add_argument("--json", action="store_true", help="one JSON line on stdout")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="predict the digit in image files")
    predict.add_argument("files", nargs="+", type=Path)
    predict.add_argument("--json", action="store_true", help="one JSON object per file per line")
    predict.add_argument("--model", type=Path, default=None, help="default: the active model")
    predict.set_defaults(func=cmd_predict)

    read = sub.add_parser("read", help="read the whole number written in image files")
    read.add_argument("files", nargs="+", type=Path)
    read.add_argument("--json", action="store_true", help="one JSON object per file per line")
    read.add_argument("--model", type=Path, default=None, help="default: the active model")
    read.set_defaults(func=cmd_read)

    serve = sub.add_parser("serve", help="run the prediction API (migrates the database first)")
    serve.add_argument("--host", default=settings.host)
    serve.add_argument("--port", type=int, default=settings.port)
    serve.add_argument("--workers", type=int, default=settings.workers)
    serve.set_defaults(func=cmd_serve)

    ui = sub.add_parser("ui", help="run the web UI")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ui.add_argument("--port", type=int, default=settings.ui_port)
    ui.set_defaults(func=cmd_ui)

    up = sub.add_parser("up", help="run the API and the UI together")
    up.set_defaults(func=cmd_up)

    migrate = sub.add_parser("migrate", help="bring the database to the latest migration")
    migrate.set_defaults(func=cmd_migrate)

    models = sub.add_parser(
        "models",
        help="model registry: list | add PATH | promote VERSION | rollback | export-onnx",
    )
    models_sub = models.add_subparsers(dest="models_command", required=True)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="one JSON object on stdout")
    models_sub.add_parser("list", parents=[as_json], help="list registered models")
    promote = models_sub.add_parser(
        "promote", parents=[as_json], help="make VERSION the active model"
    )
    promote.add_argument("version")
    add = models_sub.add_parser(
        "add", parents=[as_json], help="register a checkpoint trained elsewhere (not promoted)"
    )
    add.add_argument("path", type=Path)
    models_sub.add_parser(
        "rollback", parents=[as_json], help="re-activate the previously active model"
    )
    export_onnx = models_sub.add_parser(
        "export-onnx",
        parents=[as_json],
        help="export the ONNX graph serving needs into every registered model lacking one "
        "(or into the files given); needs torch",
    )
    export_onnx.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    models.set_defaults(func=cmd_models)

    retrain = sub.add_parser("retrain", help="fine-tune on users' corrections; promote if better")
    _add_data_args(retrain)
    retrain.add_argument(
        "--epochs", type=int, default=None, help="of every fold's fit and the final one (1)"
    )
    retrain.add_argument("--report-dir", type=Path, default=None)
    retrain.add_argument("--no-promote", action="store_true")
    retrain.add_argument(
        "--canvas-n", type=int, default=200, help="drawings per canvas benchmark set (0: skip)"
    )
    retrain.set_defaults(func=cmd_retrain)

    trainer = sub.add_parser(
        "trainer",
        help="run the retraining jobs the API queues (exports missing ONNX graphs first)",
    )
    trainer.add_argument("--once", action="store_true", help="run the jobs queued now, then exit")
    trainer.add_argument(
        "--poll", type=float, default=None, help="seconds between queue checks (default 5)"
    )
    trainer.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        help="created once jobs are taken (for a container health check)",
    )
    trainer.set_defaults(func=cmd_trainer)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except ModuleNotFoundError as exc:
        if exc.name not in TRAIN_MODULES:
            raise
        log.error("digits %s needs %s: pip install 'digits[train]'", args.command, exc.name)
        return 1


if __name__ == "__main__":
    sys.exit(main())
