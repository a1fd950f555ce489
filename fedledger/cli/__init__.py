"""The ``fedledger`` command line.

Each concern registers its own sub-command group from its own module; this file
only assembles them and turns typed errors into one readable line plus a hint.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from faults import FedLedgerError

app = typer.Typer(
    name="fedledger",
    help="Blockchain-audited federated learning for cyber-threat intelligence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True, soft_wrap=True)
_state = {"debug": False}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fedledger")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from fedledger import __version__

        return __version__


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"fedledger {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full trace on errors."),
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


# (module, attribute, name) of each sub-command group; a module that is not there yet
# is skipped, so the CLI stays usable while parts are built.
_GROUPS: list[tuple[str, str, str | None]] = [
    ("fedledger.cli.ipfs_cmd", "app", "ipfs"),
    ("fedledger.cli.keys_cmd", "app", "keys"),
    ("fedledger.cli.simulate_cmd", "register", None),
    ("fedledger.cli.federation_cmd", "register_commands", None),
    ("fedledger.cli.coordinator_cmd", "app", "coordinator"),
    ("fedledger.cli.participant_cmd", "app", "participant"),
    ("fedledger.cli.flows_cmd", "app", "flows"),
    ("fedledger.cli.audit_cmd", "register", None),
    ("fedledger.cli.demo_cmd", "register", None),
    ("fedledger.cli.model_cmd", "app", "model"),
    ("fedledger.cli.detect_cmd", "register", None),
    ("fedledger.cli.share_cmd", "app", "share"),
    ("fedledger.cli.explorer_cmd", "register", None),
]


def _load_groups() -> None:
    for module_name, attr, name in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        obj = getattr(module, attr)
        if name is None:
            obj(app)  # register(app) adds top-level commands
        else:
            app.add_typer(obj, name=name)


_load_groups()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, mapping typed errors to a one-line message and exit code 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = app(args=argv, standalone_mode=False)
        if isinstance(rv, int):  # typer.Exit(code) comes back as a return value without standalone mode
            return rv
    except FedLedgerError as exc:
        if debug:
            err_console.print_exception()
        # Messages name paths, sections ([chain]) and values: escaped, so rich shows them as they are.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        if exc.hint:
            err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        return 130
    except SystemExit as exc:  # typer.Exit / click's exit inside commands
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    except typer.Abort:
        err_console.print("[red]aborted[/]")
        return 1
    except Exception as exc:  # usage errors and anything unexpected
        # Usage errors (typer's vendored click exceptions) know how to show themselves; matched by
        # behaviour because typer 0.29 no longer depends on the click package.
        if isinstance(exc, typer.TyperException) and hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return int(exc.exit_code)
        if debug:
            err_console.print_exception()
        else:
            err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
            err_console.print("[yellow]hint:[/] run again with --debug for the full trace and report it")
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
