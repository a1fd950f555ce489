"""`fedledger audit` as an auditor uses it: options anywhere, tables or JSON, clear answers at the edges."""

from __future__ import annotations

import json

from fedledger.cli import main
from tests.helpers.runtime import run_round


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_audit_of_a_federation_without_rounds_says_so(env, capsys) -> None:
    code, out, err = run(["audit", *env.common_args()], capsys)
    assert code == 0 and "no rounds yet" in err and "every round verified" not in err
    code, out, _ = run(["audit", "--json", *env.common_args()], capsys)
    assert code == 0 and json.loads(out)["rounds"] == []


def test_audit_participant_and_lineage_print_tables_or_json_and_refuse_a_stranger(env, capsys) -> None:
    args = env.common_args()
    code, _, err = run(["audit", "participant", "0x" + "42" * 20, *args], capsys)
    assert code == 1 and "was never a participant" in err.replace("\n", " ") and "hint:" in err

    run_round(env, [0, 1])
    member = env.orgs[0].address
    # Options after the sub-command, before it, or split between the two.
    code, out, err = run(["audit", "round", "1", *args], capsys)
    assert code == 0 and "every round verified" in err, err
    code, out, err = run(["audit", *args[:4], "round", "1", *args[4:], "--json"], capsys)
    assert code == 0 and json.loads(out)["audit"]["ok"] is True

    code, out, err = run(["audit", "participant", member, *args], capsys)
    assert code == 0 and out == "" and "org-0" in err and "1 submission(s)" in err and "{" not in err
    code, out, _ = run(["audit", "--json", "participant", member, *args], capsys)
    history = json.loads(out)
    assert history["name"] == "org-0" and [s["round_id"] for s in history["submissions"]] == [1]

    code, out, err = run(["audit", "lineage", *args], capsys)
    assert code == 0 and "lineage from genesis model Qm" in err and "{" not in err
    code, out, _ = run(["audit", "lineage", "--json", *args], capsys)
    assert [s["round_id"] for s in json.loads(out)["steps"]] == [1]
