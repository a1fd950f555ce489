"""The README's "Running across real machines" recipe, run as it is written.

Its bash blocks are read out of README.md and run in order, each on its party's "host": a
directory of its own (the operator's, org-a's, org-b's), every command its own process, each
party with its own keystores and its own store, against one anvil. Only the site settings (the
first block's variables) are set to this test's ports; the files a block's ``# → HOST: FILES``
lines name are carried to those hosts after it. Services (``fedledger ipfs serve``) run until
the end; consecutive daemon blocks (``coordinator run``, ``participant run``) run side by side.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from contracts.client import Ledger, RoundState
from ipfs import EmbeddedStore, digest_to_cid
from tests.helpers.store import free_port

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
MEMBERS = ("org-a", "org-b")
HOSTS = ("operator", *MEMBERS)
SETTINGS = ("RPC_URL", "OPERATOR_STORE", "ORG_A_STORE", "ORG_B_STORE", "ORG", "ORG_STORE")


def nsl_kdd_flows(count: int, seed: int) -> str:
    """``count`` made-up NSL-KDD rows (the fixtures' generator) in the class mix of the real set.

    Enough for each member's update to improve the model: with a few dozen rows an honest
    update can move the validation metric too little and be taken for noise.
    """
    spec = spec_from_file_location("make_fixtures", DATA / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    fixtures = module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    fixtures.R.seed(seed)
    mix = (["normal"] * 10 + ["neptune"] * 4 + ["smurf"] * 2 + ["back", "ipsweep", "portsweep", "satan", "nmap"]
           + ["guess_passwd", "warezclient", "buffer_overflow"])  # fmt: skip
    rows = []
    for _ in range(count):
        label = fixtures.R.choice(mix)
        rows.append(fixtures.kdd_row(label, service=fixtures.R.choice(["http", "private", "ftp_data", "smtp"])))
    return "\n".join(",".join(r) for r in rows) + "\n"


def recipe() -> list[str]:
    """The bash blocks of the README's section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Running across real machines\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```bash\n(.*?)```", text[start:end], flags=re.S)


@dataclass
class Step:
    hosts: tuple[str, ...]
    script: str

    @property
    def kind(self) -> str:
        if "fedledger ipfs serve" in self.script:
            return "service"
        if re.search(r"fedledger (coordinator|participant) run\b", self.script):
            return "daemon"
        return "command"

    def handovers(self, host: str) -> list[tuple[tuple[str, ...], list[str]]]:
        out = []
        for targets, files in re.findall(r"^# → ([\w, -]+): (.+)$", self.script, flags=re.M):
            names = [f.replace("$ORG", host) for f in files.split()]
            out.append((tuple(t.strip() for t in targets.split(",")), names))
        return out


def steps(blocks: list[str]) -> list[Step]:
    out = []
    for block in blocks:
        first = block.splitlines()[0]
        if first == "# on the operator's host":
            hosts: tuple[str, ...] = ("operator",)
        elif first == "# on each member's host":
            hosts = MEMBERS
        elif first.startswith("# on a member's host"):
            hosts = (MEMBERS[-1],)
        else:
            raise AssertionError(f"a recipe block must say where it runs; this one starts {first!r}")
        out.append(Step(hosts, block))
    return out


def settings_for(block: str, host: str, values: dict[str, str]) -> str:
    """The settings block with this test's values; on a member's host, that member's name and store."""
    if host in MEMBERS:
        values = {**values, "ORG": host, "ORG_STORE": "$" + host.upper().replace("-", "_") + "_STORE"}
    lines = []
    for line in block.splitlines():
        m = re.match(r"^([A-Z_]+)=\S*(.*)$", line)
        if m and m.group(1) in values:
            line = f"{m.group(1)}={values[m.group(1)]}{m.group(2)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


class Hosts:
    """One directory per party; runs blocks there with the project's commands on PATH."""

    def __init__(self, base: Path, settings: str, values: dict[str, str]) -> None:
        self.base, self.settings, self.values = base, settings, values
        self.dirs = {h: base / h for h in HOSTS}
        for d in self.dirs.values():
            d.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FEDLEDGER_", "IPFS_"))}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), str(ROOT / "node_modules" / ".bin"), env.get("PATH", "")])
        env["XDG_DATA_HOME"] = str(base / "xdg")  # no default store outside the hosts' own
        self.env = env
        self.services: list[subprocess.Popen] = []
        self.count = 0

    def start(self, step: Step, host: str) -> tuple[subprocess.Popen, Path]:
        self.count += 1
        log = self.base / f"{self.count:02d}-{host}.log"
        script = settings_for(self.settings, host, self.values) + step.script
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script], cwd=self.dirs[host], env=self.env,
            stdin=subprocess.DEVNULL, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        return proc, log

    def finish(self, proc: subprocess.Popen, log: Path, timeout: float) -> str:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            pytest.fail(f"{log.name} did not finish in {timeout:.0f} s:\n{_tail(log)}")
        assert proc.returncode == 0, f"{log.name} exited {proc.returncode}:\n{_tail(log)}"
        return log.read_text(encoding="utf-8", errors="replace")

    def hand_over(self, step: Step, host: str) -> None:
        for targets, files in step.handovers(host):
            for target in targets:
                dests = MEMBERS if target == "members" else (target,)
                for dest in dests:
                    for name in files:
                        shutil.copy2(self.dirs[host] / name, self.dirs[dest] / name)

    def close(self) -> None:
        for proc in self.services:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _tail(log: Path, n: int = 40) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])


def _wait_listening(url: str, proc: subprocess.Popen, log: Path) -> None:
    host, port = url.removeprefix("http://").split(":")
    for _ in range(300):
        assert proc.poll() is None, f"{log.name} ended:\n{_tail(log)}"
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{log.name} never listened on {url}:\n{_tail(log)}")


def test_the_recipe_has_its_settings_and_says_where_each_block_runs() -> None:
    blocks = recipe()
    for name in SETTINGS:
        assert len(re.findall(rf"^{name}=", blocks[0], flags=re.M)) == 1, name
    kinds = [s.kind for s in steps(blocks[1:])]
    assert kinds.count("daemon") == 2 and kinds.count("service") == 2
    text = "\n".join(blocks)
    for needed in ("fedledger keys new", "cast send", "--coordinator", "fedledger register", "--holdout-dir",
                   "fedledger participant run", "fedledger audit", "cast call"):  # fmt: skip
        assert needed in text, needed


@pytest.mark.slow
def test_the_readme_recipe_runs_as_written(tmp_path: Path) -> None:
    blocks = recipe()
    plan = steps(blocks[1:])
    ports = [free_port() for _ in HOSTS]
    with LocalAnvil(accounts=1) as chain:
        values = {
            "RPC_URL": chain.rpc_url,
            "OPERATOR_STORE": f"http://127.0.0.1:{ports[0]}",
            "ORG_A_STORE": f"http://127.0.0.1:{ports[1]}",
            "ORG_B_STORE": f"http://127.0.0.1:{ports[2]}",
        }
        hosts = Hosts(tmp_path, blocks[0], values)
        # What each party holds before it starts: its own flows; the operator, flows it may publish.
        (hosts.dirs["operator"] / "validation.txt").write_text(nsl_kdd_flows(600, seed=1))
        (hosts.dirs["org-a"] / "flows.txt").write_text(nsl_kdd_flows(800, seed=2))
        (hosts.dirs["org-b"] / "flows.txt").write_text(nsl_kdd_flows(500, seed=3) + (DATA / "nsl_kdd_test.txt").read_text())
        outputs: dict[str, str] = {}
        try:
            running: list[tuple[subprocess.Popen, Path]] = []
            for step in plan + [None]:  # type: ignore[list-item]
                if running and (step is None or step.kind != "daemon"):
                    for proc, log in running:  # the rounds: every daemon of the group until it stops itself
                        hosts.finish(proc, log, timeout=420)
                    running = []
                if step is None:
                    break
                for host in step.hosts:
                    proc, log = hosts.start(step, host)
                    if step.kind == "service":
                        hosts.services.append(proc)
                        url = values["OPERATOR_STORE"] if host == "operator" else values[host.upper().replace("-", "_") + "_STORE"]
                        _wait_listening(url, proc, log)
                    elif step.kind == "daemon":
                        running.append((proc, log))
                    else:
                        outputs[f"{len(outputs):02d}-{host}"] = hosts.finish(proc, log, timeout=240)
                        hosts.hand_over(step, host)
        finally:
            hosts.close()

        # Every party has its own keystore and its own store; fed.toml carries the chain's id.
        fed = tomllib.loads((hosts.dirs["org-a"] / "fed.toml").read_text())
        assert fed["chain"]["chain_id"] == chain.chain_id
        assert fed["store"]["dir"] == "store" and len(fed["store"]["peers"]) == 3
        for host, keys in (("operator", ("admin.json", "coord.json")), ("org-a", ("org-a.json",)), ("org-b", ("org-b.json",))):
            for key in keys:
                assert oct((hosts.dirs[host] / key).stat().st_mode & 0o777) == "0o600"
        ledger = Ledger.attach(chain.rpc_url, fed["chain"]["ledger"])
        admin = (hosts.dirs["operator"] / "admin.address").read_text().strip()
        coordinator = (hosts.dirs["operator"] / "coord.address").read_text().strip()
        assert ledger.admin().lower() == admin.lower() and ledger.coordinator().lower() == coordinator.lower()
        assert admin.lower() != coordinator.lower()
        members = sorted((hosts.dirs[m] / f"{m}.address").read_text().strip().lower() for m in MEMBERS)
        assert sorted(a.lower() for a in ledger.participants()) == members

        # Two rounds, both finalised with both members' updates; each member read the global
        # model of round 1 from the operator's store into its own, to train round 2 on it.
        assert ledger.latest_finalized_round() == 2
        for round_id in (1, 2):
            info = ledger.get_round(round_id)
            assert info.state == RoundState.FINALIZED and info.submission_count == 2
        model_1 = digest_to_cid(ledger.get_round(1).global_model)
        for m in MEMBERS:
            assert EmbeddedStore(hosts.dirs[m] / "store").has(model_1)
        update = digest_to_cid(ledger.get_submission(2, members[0]).update)
        owner = next(m for m in MEMBERS if (hosts.dirs[m] / f"{m}.address").read_text().strip().lower() == members[0])
        assert EmbeddedStore(hosts.dirs["operator"] / "store").has(update)  # fetched by the coordinator from the member
        assert EmbeddedStore(hosts.dirs[owner] / "store").has(update)

        # The audit, and the ledger asked directly with cast.
        audit = outputs[max(outputs)]
        assert "every round verified" in audit, audit
        assert len(re.findall(r"^│ [12] +│ finalized │ verified │ 2 ", audit, flags=re.M)) == 2, audit
        assert re.search(r"^2$", audit, flags=re.M), audit  # currentRound()
        descriptor = digest_to_cid(ledger.descriptor_digest())
        assert descriptor == fed["federation"]["descriptor"] and re.search(rf"^{descriptor}$", audit, flags=re.M), audit
