"""The ``agegender`` console command (``[project.scripts]``); today one sub-command, ``serve``.

The four scripts in ``src/`` stay the way to preprocess, train, test and label files; this
command is for what is not a script: ``agegender serve`` starts the page and the REST API
(``agegender.serve``) under uvicorn.
"""

from __future__ import annotations

import argparse

from agegender import cli

SERVE_BOUNDS = {"port": cli.Bounds(0, 65535), "workers": cli.POSITIVE_INT,
                "queue": cli.COUNT, "max_mb": cli.Bounds(0, open_low=True),
                "max_minutes": cli.Bounds(0, open_low=True)}


def parse_args(argv=None) -> argparse.Namespace:
    """The command line: ``agegender serve [--host H] [--port P] ...``."""
    parser = cli.make_parser("Speaker age and gender recognition.")
    parser.prog = "agegender"
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve", formatter_class=cli.HelpFormatter,
        help="a web page and a REST API for the shipped models",
        description="Serves a page (drop or record audio, see labels and a timeline) and "
                    "the REST API (/v1/predict, /v1/timeline, /healthz, docs at /docs).")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (0.0.0.0: every interface; think first)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port")
    serve.add_argument("--max_mb", type=float, default=100.0, help="largest upload, MiB")
    serve.add_argument("--max_minutes", type=float, default=120.0,
                       help="longest recording, minutes")
    serve.add_argument("--workers", type=int, default=2,
                       help="analyses run at once (a thread pool; each uses several cores)")
    serve.add_argument("--queue", type=int, default=32,
                       help="analyses that may wait for a worker; past that: 503 busy")
    cli.add_bool_flag(serve, "verbose", default=False, help="debug logging")
    args = parser.parse_args(argv)
    cli.check_numbers(args, SERVE_BOUNDS)
    return args


def serve(args: argparse.Namespace) -> None:
    """Runs the app until interrupted."""
    import uvicorn  # noqa: PLC0415

    from agegender.serve import ServeParams, create_app  # noqa: PLC0415
    from agegender.uploads import UploadLimits  # noqa: PLC0415

    params = ServeParams(host=args.host, port=args.port, workers=args.workers,
                         queue=args.queue, limits=UploadLimits(max_mb=args.max_mb,
                                                               max_minutes=args.max_minutes))
    print(f"agegender serve: loading the models, then http://{args.host}:{args.port}/ "
          "(Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(params), host=params.host, port=params.port,
                log_level="debug" if args.verbose else "info")


def main(argv=None) -> int:
    """Entry point of the ``agegender`` command."""
    import sys  # noqa: PLC0415

    from agegender.errors import AgeGenderError  # noqa: PLC0415

    try:
        args = parse_args(argv)
    except AgeGenderError as err:  # a flag out of bounds: one line, as the scripts do
        print(f"error: {err}", file=sys.stderr)
        return 2
    return cli.run_cli(lambda: serve(args), verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())
