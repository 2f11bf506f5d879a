"""`personabid train` and `personabid evaluate`: the offline CTR tools."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
from pathlib import Path
from typing import Any

from personabid.ctr.features import FeatureSpec, default_spec
from personabid.ctr.model import CtrModel
from personabid.training.events import EventFiles
from personabid.training.fm import FmParams
from personabid.training.ftrl import FtrlParams
from personabid.training.logs import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_BAD_FRACTION, LogError
from personabid.training.report import RELIABILITY, REPORT, reliability_png, write_json
from personabid.training.source import FORMATS, LogFile
from personabid.training.train import Split, TrainOptions, train

log = logging.getLogger(__name__)
PARAM_HELP = {
    "alpha": "learning rate",
    "beta": "learning-rate smoothing",
    "l1": "L1 strength: larger zeroes more weights",
    "l2": "L2 strength",
    "factors": "factors per feature",
    "learning_rate": "AdaGrad learning rate",
    "l2_linear": "L2 on the weights",
    "l2_factors": "L2 on the factors",
    "init_scale": "standard deviation of the initial factors",
    "seed": "seed of the initial factors",
}


def register(commands: argparse._SubParsersAction) -> None:
    _register_train(commands)
    _register_evaluate(commands)


def _log_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="PATH",
        help="the log file (.gz is read as gzip); for --format events also a directory or a glob of the "
        "server's day files (events-YYYY-MM-DD.jsonl), read in time order",
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=sorted(FORMATS),
        help="events: the service's own JSON Lines event log; ipinyou: FM format with featindex; "
        "criteo: TSV without header or CSV with one; avazu: CSV with header",
    )
    parser.add_argument(
        "--featindex",
        type=Path,
        metavar="PATH",
        help="ipinyou: the featindex file (default: featindex.fm.txt beside --data, if there is one)",
    )
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        default=DEFAULT_MAX_BAD_FRACTION,
        help="fail when more than this share of rows is unreadable (default %(default)s)",
    )
    parser.add_argument(
        "--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows read at a time (default %(default)s)"
    )


def _register_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train a CTR model on an impression log",
        description="Train a click model on a log, calibrate it on a held-out slice and evaluate it on the "
        "newest rows (time order where the log has time, file order otherwise). Writes a model version "
        f"under --out with {REPORT} (AUC, log loss, predicted/actual CTR, reliability table) and "
        f"{RELIABILITY}, and prints the report as JSON. Only a model trained on --format events can be "
        "served.",
    )
    _log_arguments(parser)
    parser.add_argument("--model", choices=("ftrl", "fm"), default="ftrl", help="default %(default)s")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="model artifact root (versions + CURRENT)"
    )
    spec = parser.add_argument_group("features")
    spec.add_argument(
        "--spec",
        type=Path,
        metavar="JSON",
        help="feature specification, JSON as in a model manifest's feature_spec: fields, crosses, bits, "
        "match_buckets, tag_slots (default: every field of the format, no crosses; for events the serving "
        "default)",
    )
    spec.add_argument("--bits", type=int, help="hash space of 2^BITS features (default: the spec's, 20)")
    spec.add_argument(
        "--cross",
        action="append",
        default=[],
        metavar="A:B",
        help="add the cross of fields A and B (repeatable)",
    )
    spec.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME",
        help="add a field of the format to the spec (repeatable; for events: hour, weekday, tags)",
    )
    common = parser.add_argument_group("training")
    common.add_argument("--epochs", type=int, help="passes over the training rows (default 1)")
    common.add_argument(
        "--calibration-fraction",
        type=float,
        default=0.1,
        help="share of rows, after the training rows, to fit the calibration on (default %(default)s)",
    )
    common.add_argument(
        "--evaluation-fraction",
        type=float,
        default=0.1,
        help="share of rows, the newest, held out for the report (default %(default)s)",
    )
    common.add_argument(
        "--memory-mb",
        type=int,
        default=1024,
        help="keep hashed rows in memory between passes up to this size, else re-read (default %(default)s)",
    )
    ftrl = parser.add_argument_group("ftrl: FTRL-Proximal logistic regression (McMahan et al., KDD 2013)")
    for name, value in dataclasses.asdict(FtrlParams()).items():
        if name in PARAM_HELP:
            ftrl.add_argument(
                f"--{name}", type=float, default=value, help=f"{PARAM_HELP[name]} (default %(default)s)"
            )
    fm = parser.add_argument_group("fm: factorization machine (Rendle, ICDM 2010), AdaGrad")
    for name, value in dataclasses.asdict(FmParams()).items():
        if name in PARAM_HELP:
            fm.add_argument(
                f"--{name.replace('_', '-')}",
                type=type(value),
                default=value,
                help=f"{PARAM_HELP[name]} (default %(default)s)",
            )
    parser.set_defaults(run=_train)


def _register_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="score a trained model on another log",
        description="Score a model on every readable row of a log it was not trained on and print AUC, log "
        "loss, predicted/actual CTR and the reliability table as JSON: yesterday's model on today's traffic.",
    )
    parser.add_argument(
        "--model", type=Path, required=True, metavar="DIR", help="model artifact root or version"
    )
    _log_arguments(parser)
    parser.add_argument(
        "--predictions", type=Path, metavar="CSV", help="also write line,click,pctr for every row"
    )
    parser.add_argument("--reliability", type=Path, metavar="PNG", help="also draw the reliability diagram")
    parser.set_defaults(run=_evaluate)


def _log_file(args: argparse.Namespace) -> LogFile | EventFiles:
    """The log --data names: a file, or for --format events the server's day files (a directory or a
    glob), read in time order as one log."""
    if args.format == "events" and not args.data.is_file():
        if args.featindex is not None:
            raise LogError("a featindex belongs to iPinYou logs only")
        return EventFiles.of(args.data, args.chunk_rows)
    return LogFile(args.data, args.format, args.chunk_rows, args.featindex)


def _spec(args: argparse.Namespace, schema: str) -> FeatureSpec:
    try:
        spec = default_spec(schema)
        if args.spec is not None:
            spec = FeatureSpec.from_json(
                {**spec.to_json(), "crosses": [], **json.loads(args.spec.read_text())}
            )
        fields, crosses = list(spec.fields), list(spec.crosses)
        for text in args.cross:
            a, sep, b = text.partition(":")
            if not sep:
                raise ValueError(f"--cross {text!r}: give two fields as A:B")
            crosses.append((a, b))
        # A field named by --field or by a cross joins the spec's fields (FeatureSpec checks it is the
        # schema's): `--cross hour:country` is enough to learn a local time-of-day effect.
        for name in [*args.field, *(name for pair in crosses for name in pair)]:
            if name not in fields:
                fields.append(name)
        return dataclasses.replace(
            spec, fields=tuple(fields), crosses=tuple(crosses), bits=args.bits or spec.bits
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LogError(f"feature spec: {exc}") from exc


def _train(args: argparse.Namespace) -> int:
    source = _log_file(args)
    spec = _spec(args, source.schema)
    if spec.schema != source.schema:
        raise LogError(
            f"--spec is over {spec.schema} fields; --format {args.format} supplies {source.schema}"
        )
    epochs = {"epochs": args.epochs} if args.epochs is not None else {}
    try:
        options = TrainOptions(
            model=args.model,
            ftrl=FtrlParams(alpha=args.alpha, beta=args.beta, l1=args.l1, l2=args.l2, **epochs),
            fm=FmParams(
                factors=args.factors,
                learning_rate=args.learning_rate,
                l2_linear=args.l2_linear,
                l2_factors=args.l2_factors,
                init_scale=args.init_scale,
                seed=args.seed,
                **epochs,
            ),
            split=Split(args.calibration_fraction, args.evaluation_fraction),
            max_bad_fraction=args.max_bad_fraction,
            memory_bytes=args.memory_mb << 20,
        )
    except ValueError as exc:
        raise LogError(str(exc)) from exc
    model, summary = train(source, spec, options)
    report = {"feature_spec": spec.to_json(), **summary}
    title = f"{args.model} on {args.data.name}: AUC {summary['evaluation']['auc']:.4f}"
    directory = model.save(
        args.out,
        {"training": report},
        {
            REPORT: functools.partial(write_json, report=report),
            RELIABILITY: functools.partial(
                reliability_png, bins=summary["evaluation"]["reliability"], title=title
            ),
        },
    )
    print(json.dumps({"model": str(directory), **_brief(summary)}, indent=2))
    return 0


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    evaluation = {k: v for k, v in summary["evaluation"].items() if k != "reliability"}
    return {
        "rows": summary["data"]["rows"],
        "bad_rows": summary["data"]["bad_rows"],
        "split": summary["split"],
        "evaluation": evaluation,
        "uncalibrated": summary["calibration"]["uncalibrated"],
        "training_rows_per_second": round(summary["training"]["rows_per_second"]),
    }


def _evaluate(args: argparse.Namespace) -> int:
    from personabid.training.scoring import score_log

    model = CtrModel.load(args.model, servable=False)
    result = score_log(model, _log_file(args), args.max_bad_fraction, args.predictions)
    if args.reliability is not None:
        title = f"{model.model_type} {model.version} on {args.data.name}: AUC {result['auc']:.4f}"
        reliability_png(args.reliability, result["reliability"], title)
    print(json.dumps(result, indent=2))
    return 0
