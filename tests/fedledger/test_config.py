"""fedledger.config: every value type-checked on load; TOML written by tomli-w round-trips any path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fedledger.config import Config, ConfigError, dump_config, load_config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[federation]\nrounds = "five"\n', "[federation] rounds must be an integer, got 'five' (a string)"),
        ('[chain]\nchain_id = "abc"\n', "[chain] chain_id must be an integer, got 'abc' (a string)"),
        ("[chain]\nrpc_url = 8545\n", "[chain] rpc_url must be a string, got 8545 (an integer)"),
        ("[training]\nlr = true\n", "[training] lr must be a number, got True (a boolean)"),
        ("[federation]\nrounds = 2.5\n", "[federation] rounds must be an integer, got 2.5 (a number)"),
        ("[store]\ndir = [1]\n", "[store] dir must be a string, got [1] (an array)"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_file_section_key_and_type(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "fed.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{p}: {message}")) as info:
        load_config(p)
    assert "\n" not in str(info.value) and info.value.hint


def test_an_integer_is_a_valid_float_and_overrides_are_checked_too() -> None:
    cfg = Config().with_overrides(training={"lr": 1})
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float)
    with pytest.raises(ConfigError, match=re.escape("[federation] round_seconds must be an integer")):
        Config().with_overrides(federation={"round_seconds": "60"})


@pytest.mark.parametrize("path", ['C:\\Users\\org\\store', 'a "quoted" dir', "tab\there", "ünïcode/[x]"])
def test_written_toml_reads_back_the_same_whatever_the_path(tmp_path: Path, path: str) -> None:
    cfg = Config().with_overrides(store={"dir": path}, chain={"ledger": "0x" + "ab" * 20, "chain_id": 31337})
    p = tmp_path / "fed.toml"
    p.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(p) == cfg
