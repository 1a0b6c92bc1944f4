"""The `seqserve` command: one entry point, one subcommand per `Command` row.

Each subcommand declares its arguments here and imports its implementation lazily inside its
handler, so `seqserve --help` and the torch-free commands never import torch. To add a command,
write `_add_<name>(parser)` and `_run_<name>(args) -> int` and add a `Command` row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

TRAIN_MODULES = {"torch", "onnx", "statsmodels", "pandas", "matplotlib", "tqdm"}
TRAIN_HINT = 'missing {}: install seqserve[train] (pip install "seqserve[train]")'
DEFAULT_REPOSITORY = "service/model_repository"
DEFAULT_RUN = "runs/co2"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    needs_torch: bool = False


# TrainConfig fields with their own CLI spelling or help; every other field becomes --field-name.
_TRAIN_HELP = {
    "out_dir": ("--out", "run directory for the checkpoint"),
    "plot_dir": ("--plots", "directory for the PNG plots (default: the run directory)"),
    "threads": ("--threads", "torch threads (fixed, for reproducibility)"),
    "patience": ("--patience", "early-stopping patience, epochs"),
    "window": ("--window", "weeks per training sequence"),
    "state_noise": ("--state-noise", "scale of the random initial states of training windows"),
}


# Boolean TrainConfig fields set by on/off flags below rather than by --field-name VALUE.
_TRAIN_SWITCHES = ("progress", "plots", "force")


def _add_train(p: argparse.ArgumentParser) -> None:
    import dataclasses

    from seqserve.model.config import TrainConfig  # torch-free

    for f in dataclasses.fields(TrainConfig):
        if f.name in _TRAIN_SWITCHES:
            continue
        flag, help_ = _TRAIN_HELP.get(f.name, ("--" + f.name.replace("_", "-"), None))
        kind = type(f.default) if f.default is not None else str
        extra: dict[str, object] = {"choices": ["lstm", "gru"]} if f.name == "cell" else {}
        p.add_argument(
            flag,
            dest=f.name,
            type=kind,
            default=f.default,
            help=(help_ + " " if help_ else "") + "(default: %(default)s)",
            **extra,  # type: ignore[arg-type]
        )
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--force", action="store_true", help="replace a run directory that holds a checkpoint"
    )


def _run_train(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from seqserve.model.config import TrainConfig
    from seqserve.model.train import RunExists, format_metrics, train

    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name not in _TRAIN_SWITCHES
    }
    cfg = TrainConfig(**values, progress=not args.quiet, plots=not args.no_plots, force=args.force)
    started = time.perf_counter()
    try:
        ckpt = train(cfg)
    except RunExists as e:
        print(f"train refused: {e}", file=sys.stderr)
        return 1
    metrics = ckpt["metrics"]
    assert isinstance(metrics, dict)
    print(format_metrics(metrics))
    print(
        f"best epoch {metrics['best_epoch']} of {metrics['epochs_run']}; "
        f"checkpoint {cfg.out_dir}/checkpoint.pt; {time.perf_counter() - started:.1f} s"
    )
    return 0


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint", default=f"{DEFAULT_RUN}/checkpoint.pt", help="a `seqserve train` checkpoint"
    )
    p.add_argument("--repository", default=DEFAULT_REPOSITORY, help="model repository root")
    p.add_argument("--name", help="model name in the repository (default: co2; --module needs it)")
    p.add_argument("--version", help="model version to write (default: one above the highest)")
    p.add_argument("--force", action="store_true", help="replace --version if it exists")
    own = p.add_argument_group("your own PyTorch module (instead of --checkpoint)")
    own.add_argument(
        "--module",
        metavar="PKG.MOD:FACTORY",
        help="a zero-argument factory or class returning the nn.Module (see docs/models.md)",
    )
    own.add_argument(
        "--module-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a keyword argument for the factory, a Python literal or text (repeatable)",
    )
    own.add_argument("--weights", help="the module's state_dict, saved with torch.save")
    own.add_argument(
        "--features",
        metavar="N|FILE",
        help="input feature count, or a JSON/TOML features file as for `seqserve import`",
    )
    own.add_argument("--description", default="", help="the manifest's description")


def _run_export(args: argparse.Namespace) -> int:
    from seqserve.importer.versions import VersionExists
    from seqserve.model.verify import VerificationError

    if args.module is not None:
        return _run_export_module(args)
    from seqserve.model.export import export_checkpoint

    try:
        target = export_checkpoint(
            args.checkpoint, args.repository, args.name or "co2", args.version, force=args.force
        )
    except VersionExists as e:
        print(f"export refused: {e} (pass --force to replace it)", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f"export failed: {e} (run `seqserve train` first)", file=sys.stderr)
        return 1
    except VerificationError as e:
        print(f"export failed verification: {e}", file=sys.stderr)
        return 1
    print(f"exported and verified {target}")
    return 0


def _run_export_module(args: argparse.Namespace) -> int:
    from seqserve.importer.errors import ImportRefused
    from seqserve.importer.versions import VersionExists
    from seqserve.model.export_module import export_module
    from seqserve.model.module_contract import ModuleRefused
    from seqserve.model.verify import VerificationError

    if not args.name:
        print("export --module needs --name (the model's name in the repository)", file=sys.stderr)
        return 2
    features = args.features
    if features is not None and features.isdigit():
        features = int(features)
    try:
        done = export_module(
            args.module,
            args.repository,
            args.name,
            args.version,
            weights=args.weights,
            module_args=args.module_arg,
            features=features,
            description=args.description,
            force=args.force,
        )
    except (ModuleRefused, ImportRefused, VersionExists, OSError) as e:
        print(f"export refused: {e}", file=sys.stderr)
        return 1
    except VerificationError as e:
        print(f"export failed verification: {e}", file=sys.stderr)
        return 1
    sig = done.imported.manifest.signature
    pairs = ", ".join(f"{p.input}->{p.output} {p.shape()}" for p in sig.state)
    checked = "PyTorch and the NumPy reference" if done.reference else "PyTorch"
    print(
        f"exported {done.imported.path}: x -> y {sig.data_output.shape}, state {pairs}; "
        f"streamable; agrees with {checked} (max abs err {done.max_abs_err:.1e})"
    )
    for note in done.notes:
        print(note)
    return 0


def _add_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", help="a model version directory: <repository>/<name>/<version>")
    p.add_argument(
        "--checkpoint", help="also compare PyTorch, from this `seqserve train` checkpoint"
    )
    p.add_argument("--tol", type=float, default=1e-5, help="max abs error allowed")


def _run_verify(args: argparse.Namespace) -> int:
    from seqserve.model.verify import VerificationError, verify_model_dir

    runner = None
    if args.checkpoint:
        try:
            from seqserve.model.export import load_checkpoint, torch_runner
        except ModuleNotFoundError as e:
            if e.name not in TRAIN_MODULES:
                raise
            print(TRAIN_HINT.format(e.name) + " for --checkpoint", file=sys.stderr)
            return 2
        runner = torch_runner(load_checkpoint(args.checkpoint)[0])
    try:
        report = verify_model_dir(args.model_dir, torch_runner=runner, tol=args.tol)
    except VerificationError as e:
        print(f"FAILED {args.model_dir}: {e}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


def _add_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx_file", help="a recurrent ONNX model (state explicit in and out)")
    p.add_argument("--repository", required=True, help="model repository root to write into")
    p.add_argument("--name", required=True, help="model name in the repository")
    p.add_argument("--version", help="version to write (default: one above the highest)")
    p.add_argument(
        "--data-input",
        action="append",
        help="a data input, in feature order (repeatable; default: detected)",
    )
    p.add_argument("--data-output", help="the data output (default: detected)")
    p.add_argument(
        "--state",
        action="append",
        metavar="IN:OUT",
        help="a state pair, graph input:graph output (repeatable; default: detected)",
    )
    p.add_argument(
        "--layout",
        choices=["batch_major", "time_major", "no_time_axis"],
        help="data axes [B,T,F], [T,B,F] or [B,F] (default: detected)",
    )
    p.add_argument("--time-major", action="store_true", help="same as --layout time_major")
    p.add_argument("--features", help="JSON/TOML file: features (and outputs) of the manifest")
    p.add_argument("--description", default="", help="the manifest's description")


def _run_import(args: argparse.Namespace) -> int:
    from seqserve.importer.errors import ImportRefused
    from seqserve.importer.versions import VersionExists

    try:
        from seqserve.importer.build import import_model
    except ModuleNotFoundError as e:
        if e.name != "onnx":
            raise
        print('seqserve import needs onnx: pip install "seqserve[import]"', file=sys.stderr)
        return 2
    states = None
    if args.state:
        states = []
        for pair in args.state:
            src, sep, out = pair.partition(":")
            if not (sep and src and out):
                print(f"--state {pair!r}: expected IN:OUT", file=sys.stderr)
                return 2
            states.append((src, out))
    layout = "time_major" if args.time_major else args.layout
    try:
        done = import_model(
            args.onnx_file,
            args.repository,
            args.name,
            args.version,
            data_inputs=args.data_input,
            data_output=args.data_output,
            states=states,
            layout=layout,
            features_file=args.features,
            description=args.description,
        )
    except (ImportRefused, VersionExists, OSError) as e:
        print(f"import refused: {e}", file=sys.stderr)
        return 1
    sig = done.manifest.signature
    pairs = ", ".join(f"{p.input}->{p.output} {p.shape()}" for p in sig.state)
    data = ", ".join(s.name for s in sig.data_inputs)
    print(
        f"imported {done.path}: data {data} -> {sig.data_output.name} ({sig.data_layout}), "
        f"state {pairs}; streamable"
    )
    return 0


def _add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="interface to bind (SEQSERVE_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (SEQSERVE_PORT; default 8000)")
    p.add_argument(
        "--model-repository", help="model repository (SEQSERVE_MODEL_REPOSITORY; default bundled)"
    )
    p.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the sessions (SEQSERVE_WORKERS; default 1; docs/scaling.md)",
    )


def _run_serve(args: argparse.Namespace) -> int:
    import os

    from seqserve.service.__main__ import main as serve

    flags = ("host", "port", "model_repository", "workers")
    for flag in flags:
        value = getattr(args, flag)
        if value is not None:
            os.environ[f"SEQSERVE_{flag.upper()}"] = str(value)
    return serve()


def _add_bench(p: argparse.ArgumentParser) -> None:
    # every argument goes to scripts/bench.py untouched (`seqserve bench --help` shows them):
    # with "+" as the only prefix, argparse reads "--quick" as a plain value, not an option
    p.prefix_chars = "+"
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="scripts/bench.py's options")


def _run_bench(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    # `seqserve bench redis ...` runs scripts/bench_redis.py (the Redis and cluster setups)
    bench_args = list(args.bench_args)
    name = "bench_redis.py" if bench_args[:1] == ["redis"] else "bench.py"
    bench_args = bench_args[1:] if name == "bench_redis.py" else bench_args
    script = Path(__file__).resolve().parents[1] / "scripts" / name
    if not script.is_file():
        print(
            f"seqserve bench runs from a source checkout: {script} is missing "
            "(clone the repository and install it with `pip install -e .`)",
            file=sys.stderr,
        )
        return 2
    # run as `python scripts/bench.py` does, so its imports resolve from scripts/
    return subprocess.call([sys.executable, str(script), *bench_args])


def _add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="server base URL (SEQSERVE_URL; default http://127.0.0.1:8000)")
    p.add_argument("--api-key", help="API key (SEQSERVE_API_KEY)")


def _add_stream(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="CSV or JSON-lines rows (default: stdin)")
    p.add_argument("--model", help="model of a new session")
    p.add_argument("--session", help="continue this session instead (from its current step)")
    _add_client_options(p)
    p.add_argument("--format", choices=["csv", "jsonl"], help="input format (default: guessed)")
    p.add_argument("--output", choices=["csv", "jsonl"], help="output format (default: input's)")
    p.add_argument("--chunk", type=int, default=64, help="most timesteps per message")
    p.add_argument("--forecast", type=int, metavar="N", help="then forecast N steps ahead")
    p.add_argument("--delete", action="store_true", help="delete the session at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_stream(args: argparse.Namespace) -> int:
    from seqserve.client.commands import stream_main

    return stream_main(args)


def _add_sessions(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action", choices=["list", "show", "delete"], nargs="?", default="list", help="what to do"
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="session ids (show, delete)")
    _add_client_options(p)


def _run_sessions(args: argparse.Namespace) -> int:
    from seqserve.client.commands import sessions_main

    return sessions_main(args)


COMMANDS: list[Command] = [
    Command("train", "train the default CO2 forecaster", _add_train, _run_train, True),
    Command(
        "export",
        "export a checkpoint or your module to ONNX + manifest",
        _add_export,
        _run_export,
        True,
    ),
    Command("import", "import a recurrent ONNX model", _add_import, _run_import),
    Command("verify", "check a model directory", _add_verify, _run_verify),
    Command("serve", "run the HTTP server (settings: SEQSERVE_* env)", _add_serve, _run_serve),
    Command("bench", "run the benchmarks (from a source checkout)", _add_bench, _run_bench),
    Command("stream", "step rows through a session (the client)", _add_stream, _run_stream),
    Command("sessions", "list, show or delete sessions", _add_sessions, _run_sessions),
]


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


DESCRIPTION = (
    "seqserve: stateful streaming inference for recurrent sequence models (LSTM/GRU) on ONNX "
    "Runtime. Run `seqserve serve` for the server on the bundled model; `seqserve COMMAND "
    "--help` for a command's options."
)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    from seqserve import __version__

    parser = argparse.ArgumentParser(prog="seqserve", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"seqserve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in commands:
        p = sub.add_parser(
            cmd.name,
            help=cmd.help,
            description=cmd.help,
            formatter_class=_ShowDefaults,
        )
        cmd.add_arguments(p)
        p.set_defaults(_command=cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `seqserve`: say what it can do
        parser.print_help()
        return 0
    cmd: Command = args._command
    try:
        return cmd.run(args)
    except ModuleNotFoundError as e:
        if cmd.needs_torch and e.name in TRAIN_MODULES:
            print(TRAIN_HINT.format(e.name), file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
