"""The genesis model a federation starts from, and how anyone re-derives it.

A descriptor commits to its genesis model in one of three ways (its ``genesis`` entry):

- **seeded** (no entry): torch's default initialisation under a seed taken from the
  descriptor's own bytes;
- **pretrained** (federated transfer learning from public data): the seeded model trained
  by a fixed recipe on a public flow set named by CID. Training here is seeded and
  single-threaded (:mod:`federation.training`), so anyone holding the flow set re-runs the
  recipe and gets the same bytes; the audit does, and so does every member before it trains
  on the genesis. Bit-exact reproduction needs the torch release the recipe records (a
  different release may order its float operations differently); the audit names both when
  the bytes differ;
- **parent** (transfer between federations): the global model of a finalised round of
  another federation of the same model spec, recorded as (chain id, ledger, round, model
  CID), so lineage crosses ledgers: :func:`follow_lineage` walks from a ledger to its
  ancestors and checks every link against their chains.

Everything here reads untrusted bytes (a descriptor from the store, a parent ledger an
admin named), so every entry is type-checked, the pretraining's work is capped
(:data:`MAX_PRETRAIN_SAMPLES`), and a lineage walk stops at :data:`MAX_LINEAGE` links or a
ledger it has already seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faults import FedLedgerError
from federation.model import (
    InvalidModelSpec,
    ModelSpec,
    load_model_bytes,
    save_model_bytes,
)

if TYPE_CHECKING:
    from contracts.client import Ledger
    from federation.descriptor import Descriptor
    from ipfs import ContentStore

MAX_PRETRAIN_SAMPLES = 20_000_000  # epochs x records: about a minute of one core for the default MLP
MAX_PRETRAIN_EPOCHS = 200
MAX_PRETRAIN_BYTES = 1 << 30
MAX_LINEAGE = 16
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
CLASS_WEIGHTS = ("balanced", "sqrt", None)
OPTIMIZERS = ("adam", "sgd")


class GenesisError(FedLedgerError):
    """A genesis entry that is malformed, or a genesis model that cannot be re-derived."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or "check the descriptor's genesis entry against `fedledger deploy --help`")


@dataclass(frozen=True)
class Pretraining:
    """The genesis is the seeded model trained by this recipe on the public flow set ``dataset``."""

    dataset: str  # CID of a flow set file (federation.flowset) in the store
    epochs: int = 5
    batch_size: int = 256
    lr: float = 5e-3
    optimizer: str = "adam"
    class_weights: str | None = "sqrt"
    seed: int = 0
    torch: str = ""  # the torch release that made the genesis bytes

    kind = "pretrained"

    def describe(self) -> str:
        return f"pretrained on public flow set {self.dataset} ({self.epochs} epochs, torch {self.torch})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "dataset": self.dataset, "torch": self.torch,
            "recipe": {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "optimizer": self.optimizer,
                       "class_weights": self.class_weights, "seed": self.seed},
        }  # fmt: skip


@dataclass(frozen=True)
class ParentModel:
    """The genesis is the global model of round ``round`` of the ledger ``ledger`` on chain ``chain_id``."""

    chain_id: int
    ledger: str
    round: int
    model: str  # CID of that round's global model

    kind = "parent"

    def describe(self) -> str:
        return f"round {self.round} of ledger {self.ledger} (chain {self.chain_id})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chain_id": self.chain_id, "ledger": self.ledger, "round": self.round, "model": self.model}


Genesis = Pretraining | ParentModel


def describe_genesis(genesis: Genesis | None) -> str:
    """One line on how a genesis model is made, as the CLI and the explorer show it."""
    return genesis.describe() if genesis is not None else "seeded from the descriptor"


def _int(v: object, lo: int, hi: int) -> bool:
    return type(v) is int and lo <= v <= hi


def _cid(v: object) -> bool:
    return isinstance(v, str) and 1 <= len(v) <= 100


def parse_genesis(obj: Any) -> Genesis:
    """A descriptor's genesis entry from untrusted JSON; :class:`GenesisError` names the first thing wrong."""
    if not isinstance(obj, dict):
        raise GenesisError(f"genesis should be an object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind == "pretrained":
        if set(obj) != {"kind", "dataset", "torch", "recipe"}:
            raise GenesisError("a pretrained genesis should be {kind, dataset, torch, recipe}")
        recipe = obj["recipe"]
        keys = {"epochs", "batch_size", "lr", "optimizer", "class_weights", "seed"}
        if not isinstance(recipe, dict) or set(recipe) != keys:
            raise GenesisError(f"the pretraining recipe should be {sorted(keys)}")
        if not _cid(obj["dataset"]):
            raise GenesisError("the pretraining data set should be a CID")
        if not isinstance(obj["torch"], str) or len(obj["torch"]) > 40:
            raise GenesisError("the pretraining's torch release should be a version string")
        lr = recipe["lr"]
        if not (
            _int(recipe["epochs"], 1, MAX_PRETRAIN_EPOCHS) and _int(recipe["batch_size"], 1, 1 << 16)
            and isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr <= 1
            and recipe["optimizer"] in OPTIMIZERS and recipe["class_weights"] in CLASS_WEIGHTS
            and _int(recipe["seed"], 0, 2**53 - 1)
        ):  # fmt: skip
            raise GenesisError(
                f"the pretraining recipe needs epochs in 1..{MAX_PRETRAIN_EPOCHS}, batch_size in 1..65536, lr in (0, 1], "
                f"optimizer in {OPTIMIZERS}, class_weights in {CLASS_WEIGHTS} and an integer seed; got {recipe}"
            )
        return Pretraining(
            obj["dataset"], recipe["epochs"], recipe["batch_size"], float(lr), recipe["optimizer"],
            recipe["class_weights"], recipe["seed"], obj["torch"],
        )  # fmt: skip
    if kind == "parent":
        if set(obj) != {"kind", "chain_id", "ledger", "round", "model"}:
            raise GenesisError("a parent genesis should be {kind, chain_id, ledger, round, model}")
        if not (_int(obj["chain_id"], 1, 2**53 - 1) and isinstance(obj["ledger"], str) and _ADDRESS.match(obj["ledger"])
                and _int(obj["round"], 1, 2**53 - 1) and _cid(obj["model"])):  # fmt: skip
            raise GenesisError("a parent genesis needs a chain id, a ledger address (0x and 40 hex digits), a round >= 1 and a model CID")
        return ParentModel(obj["chain_id"], obj["ledger"], obj["round"], obj["model"])
    raise GenesisError(f"genesis kind should be 'pretrained' or 'parent', got {kind!r}")


def seeded_model(spec: ModelSpec, seed: int) -> bytes:
    from federation.model.network import init_model  # torch only when a model is made

    return save_model_bytes(spec, init_model(spec, seed))


def pretrain(spec: ModelSpec, seed: int, recipe: Pretraining, dataset: Any) -> bytes:
    """The genesis bytes ``recipe`` makes from the seeded model on ``dataset`` (a FlowDataset of ``spec``'s schema)."""
    from federation.model.network import init_model
    from federation.training import TrainingError, train_local

    work = recipe.epochs * len(dataset.labels)
    if work > MAX_PRETRAIN_SAMPLES:
        raise GenesisError(
            f"the pretraining recipe asks for {recipe.epochs} epochs over {len(dataset.labels):,} flows "
            f"({work:,} sample passes), more than the {MAX_PRETRAIN_SAMPLES:,} an auditor is asked to re-run",
            hint="use fewer epochs or a smaller public data set",
        )
    try:
        result = train_local(
            spec, init_model(spec, seed), dataset, epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
            seed=recipe.seed, optimizer=recipe.optimizer, class_weights=recipe.class_weights,  # type: ignore[arg-type]
        )  # fmt: skip
    except TrainingError as exc:
        raise GenesisError(f"the pretraining cannot run: {exc}") from None
    return save_model_bytes(spec, result.weights)


def genesis_model(descriptor: Descriptor, store: ContentStore | None) -> bytes:
    """The canonical bytes of the genesis model ``descriptor`` commits to (re-running its pretraining if it has one).

    A pretrained or parent genesis reads the store (the public flow set, or the parent's
    model); a seeded one needs none.
    """
    from federation.flowset import load_flowset

    g = descriptor.genesis
    if g is None:
        return seeded_model(descriptor.spec, descriptor.genesis_seed())
    if store is None:
        raise GenesisError(f"a {g.kind} genesis is re-derived from the store, and none was given")
    if isinstance(g, Pretraining):
        data = store.get(g.dataset, max_bytes=MAX_PRETRAIN_BYTES)
        try:
            dataset = load_flowset(data, descriptor.spec)
        except FedLedgerError as exc:
            raise GenesisError(f"the pretraining data set {g.dataset}: {exc}") from None
        return pretrain(descriptor.spec, descriptor.genesis_seed(), g, dataset)
    spec = descriptor.spec
    data = store.get(g.model, max_bytes=64 + 2 * 4 * spec.num_parameters() + (1 << 20))
    try:
        _, weights = load_model_bytes(data, spec)
    except (FedLedgerError, InvalidModelSpec, ValueError) as exc:
        raise GenesisError(f"the parent's model {g.model} does not fit this federation's model spec: {exc}") from None
    canonical = save_model_bytes(spec, weights)
    if canonical != bytes(data):
        raise GenesisError(f"the parent's model {g.model} is not a canonical model file")
    return canonical


@dataclass(frozen=True)
class Link:
    """One step of a lineage: ledger ``child`` started from round ``round`` of ledger ``parent``."""

    child: str
    parent: str
    chain_id: int
    round: int
    model: str
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"child": self.child, "parent": self.parent, "chain_id": self.chain_id, "round": self.round,
                "model": self.model, "ok": not self.problems, "problems": list(self.problems)}  # fmt: skip


def follow_lineage(
    descriptor: Descriptor,
    address: str,
    store: ContentStore,
    attach: Callable[[int, str], Ledger],
    *,
    limit: int = MAX_LINEAGE,
) -> list[Link]:
    """Walk from the ledger at ``address`` (with ``descriptor``) up its parents, checking each link on its chain.

    A link holds when the parent ledger exists on the named chain, the named round is
    finalised there with the named model as its global model, and the parent's descriptor
    (the one its ledger binds) has the same model spec and normaliser. ``attach(chain_id,
    address)`` connects to a parent ledger. The walk stops at a seeded or pretrained genesis,
    a broken link, a ledger already seen, or after ``limit`` links (at most :data:`MAX_LINEAGE`).
    """
    from federation.descriptor import MAX_DESCRIPTOR_BYTES, Descriptor
    from ipfs import cid_to_digest, digest_to_cid

    links: list[Link] = []
    seen = {address.lower()}
    child, desc = address, descriptor
    while isinstance(desc.genesis, ParentModel) and len(links) < min(limit, MAX_LINEAGE):
        g = desc.genesis
        problems: list[str] = []
        parent_desc = None
        if g.ledger.lower() in seen:
            problems.append(f"ledger {g.ledger} appears twice in this lineage")
        else:
            try:
                parent = attach(g.chain_id, g.ledger)
                info = parent.get_round(g.round) if g.round <= parent.current_round() else None
                if info is None:
                    problems.append(f"ledger {g.ledger} on chain {g.chain_id} has no round {g.round}")
                elif info.global_model is None or info.global_model != cid_to_digest(g.model):
                    problems.append(
                        f"round {g.round} of ledger {g.ledger} is {info.state.name.lower()} with global model "
                        f"{digest_to_cid(info.global_model) if info.global_model else 'none'}, not {g.model}"
                    )
                parent_cid = digest_to_cid(parent.descriptor_digest())
                parent_desc = Descriptor.from_bytes(store.get(parent_cid, max_bytes=MAX_DESCRIPTOR_BYTES))
                if parent_desc.spec != desc.spec:
                    problems.append(f"ledger {g.ledger}'s model spec is not this federation's: {parent_desc.spec} vs {desc.spec}")
                if parent_desc.normaliser != desc.normaliser:
                    problems.append(f"ledger {g.ledger} normalises flow features differently, so its weights mean other things here")
            except FedLedgerError as exc:
                problems.append(f"ledger {g.ledger} on chain {g.chain_id}: {str(exc).splitlines()[0][:300]}")
        links.append(Link(child, g.ledger, g.chain_id, g.round, g.model, tuple(problems)))
        if problems or parent_desc is None:
            break
        seen.add(g.ledger.lower())
        child, desc = g.ledger, parent_desc
    return links


def lineage_mismatches(links: list[Link]) -> list[str]:
    """The audit's findings for a lineage: every problem of every link, each named as a lineage problem."""
    return [f"lineage: {problem}" for link in links for problem in link.problems]
