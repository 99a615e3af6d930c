"""The ``aidetect`` command. Sub-commands live in ``aidetect.commands.*`` and are imported
only when used, so ``aidetect results`` does not pay for importing torch.

Errors a user can cause (:class:`aidetect.errors.AidetectError`) end as one line on stderr
and exit code 2, never a traceback. The exit codes, the same for every command
(:mod:`aidetect.errors`): 0 everything was done, 1 some inputs failed (each listed), 2 a
usage, configuration or service error. ``<command> --help`` and usage errors never import
torch (tests/pipeline/test_cli_contract.py).
"""

from __future__ import annotations

import importlib
import sys

import click

from aidetect import __version__
from aidetect.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, AidetectError

# name -> ("module:attribute", one-line help shown by ``aidetect --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("aidetect.commands.up:up", "Run the main job: watch the inbox, score what lands in it."),
    "scan": ("aidetect.commands.scan:scan", "Scan a folder of images through the workers."),
    "results": ("aidetect.commands.scan:results", "Query stored results (filters, CSV/JSON)."),
    "predict": ("aidetect.commands.predict:predict", "Score image files directly, optionally with heatmaps."),
    "worker": ("aidetect.commands.worker:worker", "Start a Celery worker that scores images."),
    "status": ("aidetect.commands.status:status", "Live workers by host with their throughput, the queue."),
    "train": ("aidetect.commands.train:train", "Train a model directory on one or more data sources."),
    "evaluate": ("aidetect.commands.train:evaluate", "Evaluate a model: metrics, robustness, plots, report."),
    "models": ("aidetect.commands.models:models", "List, register and promote model versions."),
    "data": ("aidetect.commands.data:data", "Build training data sets (extra) and check their format bias."),
    "gui": ("aidetect.commands.gui:gui", "Open the desktop dashboard."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("aidetect"):
                return None
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aidetect")
def cli() -> None:
    """aidetect: tell AI-generated images from real photographs, and show why.

    Settings come from AIDETECT_* environment variables (AIDETECT_HOME, AIDETECT_DATABASE_URL,
    AIDETECT_BROKER_URL, AIDETECT_INBOX, AIDETECT_MODEL, ...); see the README.
    """


def main(argv: list[str] | None = None) -> int:
    try:
        rv = cli.main(args=argv, prog_name="aidetect", standalone_mode=False)
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv  # click returns the exit code of ``ctx.exit(n)`` / ``Exit(n)`` here
    except AidetectError as exc:
        click.echo(f"aidetect: error: {_one_line(exc)}", err=True)
        return EXIT_USAGE
    except click.exceptions.Abort:
        click.echo("aidetect: aborted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE  # a usage error (click's own base class would say 1)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("aidetect: interrupted", err=True)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
