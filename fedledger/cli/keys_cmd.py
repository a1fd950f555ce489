"""`fedledger keys`: make and inspect encrypted keystores (the format geth, cast and eth-account share)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fedledger.cli.common import PasswordFileOpt

app = typer.Typer(help="Encrypted keystores for the signing keys.", no_args_is_help=True)


@app.command("new")
def keys_new(
    out: Path = typer.Option(..., "--out", help="Keystore file to create (never overwritten; mode 0600)."),
    password_file: Path = PasswordFileOpt,
) -> None:
    """Create a key and write it to an encrypted keystore (scrypt, v3); print only its address."""
    from fedledger.keys import PASSWORD_ENV, KeyError_, new_keystore, read_password

    password = read_password(password_file)
    if password is None:
        if not sys.stdin.isatty():
            raise KeyError_(
                "no password for the new keystore",
                hint=f"pass --password-file FILE, set {PASSWORD_ENV}, or run on a terminal to be asked",
            )
        password = typer.prompt("password for the new keystore", hide_input=True, confirmation_prompt=True, err=True)
    print(new_keystore(out, password))


@app.command("address")
def keys_address(
    keystore: Path = typer.Option(..., "--keystore", help="Keystore JSON file."),
    password_file: Path = PasswordFileOpt,
) -> None:
    """Print the address a keystore holds the key of (a password only for keystores that record no address)."""
    from fedledger.keys import keystore_address

    print(keystore_address(keystore, password_file))
