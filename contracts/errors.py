"""Typed failures of the ledger: build, local chain, RPC, transactions and contract reverts.

Every custom error of ``FederationLedger.sol`` has a class here named exactly like it,
deriving from :class:`LedgerRevert`; the client raises it with the decoded arguments both
as attributes and in :attr:`LedgerRevert.args_dict`. A test checks that the ABI and this
module agree.
"""

from __future__ import annotations

from typing import Any, ClassVar

from faults import FedLedgerError


class LedgerError(FedLedgerError):
    """Root of every failure raised by the ``contracts`` package."""


# --------------------------------------------------------------------- build


class CompilerNotFound(LedgerError):
    """No solc of the pinned version was found in any of the places searched."""


class CompilationFailed(LedgerError):
    """solc ran but reported errors or produced no output for the contract."""


class ArtifactError(LedgerError):
    """The committed build artifact is missing, unreadable or inconsistent."""


# --------------------------------------------------------------------- local chain


class AnvilError(LedgerError):
    """The local anvil chain could not be found, started or reached."""


class AnvilNotFound(AnvilError):
    """No anvil binary in ANVIL_BIN, on PATH or in the repository's node_modules."""


# --------------------------------------------------------------------- RPC and transactions


class RpcUnavailable(LedgerError):
    """The JSON-RPC endpoint did not answer."""

    transient = True  # a node that is restarting or overloaded answers again later

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach the chain's JSON-RPC endpoint at {url}: {reason}",
            hint=hint or "check that the node is running and the URL (scheme, host, port) is right",
        )

    def __reduce__(self):  # type: ignore[override]
        return (type(self), (self.url, self.reason), {"hint": self.hint})


class RpcError(LedgerError):
    """The node answered with an error the client does not know how to classify."""


class AttachRefused(LedgerError):
    """The address is not a FederationLedger built from this artifact, or the chain is wrong."""


class InvalidKey(LedgerError):
    """A private key could not be parsed."""


class InsufficientFunds(LedgerError):
    """The sending account cannot pay for the transaction's gas."""


class TransactionFailed(LedgerError):
    """A transaction was not mined, or failed without revert data."""


class ReceiptTimeout(TransactionFailed):
    """No receipt arrived within the timeout."""

    transient = True  # the node may still mine it; the caller re-reads the chain before sending again


# --------------------------------------------------------------------- reverts


class LedgerRevert(LedgerError):
    """A contract call reverted with one of FederationLedger's custom errors.

    ``function`` is the contract function that reverted, ``error`` the custom error's name
    and ``args_dict`` its decoded arguments (addresses checksummed, digests as ``0x`` hex).
    Each argument is also an attribute of the exception.
    """

    #: Parameter names of the Solidity error, in order (filled in for each subclass).
    fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        function: str,
        args_dict: dict[str, Any] | None = None,
        *,
        tx_hash: str | None = None,
        error: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.function = function
        self.error = error or type(self).__name__
        self.args_dict = dict(args_dict or {})
        self.tx_hash = tx_hash
        for name, value in self.args_dict.items():
            setattr(self, name, value)
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.args_dict.items())
        where = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"{function} reverted: {self.error}({shown}){where}", hint=hint or self.default_hint)

    default_hint: ClassVar[str | None] = None

    def __reduce__(self):  # type: ignore[override]  # picklable across processes despite the signature
        return (type(self), (self.function, self.args_dict), {"tx_hash": self.tx_hash, "error": self.error})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


class UnknownRevert(LedgerRevert):
    """A revert whose data is not one of the contract's custom errors (e.g. a panic)."""


class NotAdmin(LedgerRevert):
    fields = ("account",)
    account: str
    default_hint = "send this transaction from the admin's key (see `admin()`)"


class NotPendingAdmin(LedgerRevert):
    fields = ("account",)
    account: str
    default_hint = "only the account named in transferAdmin can accept; see `pendingAdmin()`"


class NotCoordinator(LedgerRevert):
    fields = ("account",)
    account: str
    default_hint = (
        "send this transaction from the coordinator's key (the ledger's coordinator() names its address; "
        "the admin changes it with `fedledger admin set-coordinator`)"
    )


class NotParticipant(LedgerRevert):
    fields = ("account",)
    account: str
    default_hint = "the account must be registered by the admin first (registerParticipant)"


class AlreadyRegistered(LedgerRevert):
    fields = ("account",)
    account: str


class ZeroAddress(LedgerRevert):
    fields = ()


class EmptyName(LedgerRevert):
    fields = ("participant",)
    participant: str


class InvalidMinUpdates(LedgerRevert):
    fields = ("minUpdates",)
    minUpdates: int


class EmptyModel(LedgerRevert):
    fields = ()


class EmptyManifest(LedgerRevert):
    fields = ()


class UnknownRound(LedgerRevert):
    fields = ("roundId",)
    roundId: int
    default_hint = "round ids start at 1 and go up to `currentRound()`"


class RoundStillOpen(LedgerRevert):
    fields = ("roundId",)
    roundId: int
    default_hint = "finalize or abort the open round first"


class RoundNotOpen(LedgerRevert):
    fields = ("roundId",)
    roundId: int


class BaseModelMismatch(LedgerRevert):
    fields = ("expected", "given")
    expected: bytes
    given: bytes
    default_hint = "a round must start from `latestModel()`"


class DeadlineNotInFuture(LedgerRevert):
    fields = ("deadline", "nowTimestamp")
    deadline: int
    nowTimestamp: int


class InvalidShareDeadline(LedgerRevert):
    fields = ("shareDeadline", "deadline", "secureAggregation")
    shareDeadline: int
    deadline: int
    secureAggregation: bool
    default_hint = "a secure-aggregation round needs a share deadline between now and its deadline; other rounds none"


class SubmissionsClosed(LedgerRevert):
    fields = ("roundId", "deadline")
    roundId: int
    deadline: int
    default_hint = "the round stopped taking submissions (its deadline passed or every eligible member submitted)"


class SubmissionsStillOpen(LedgerRevert):
    fields = ("roundId", "deadline", "submitted", "eligible")
    roundId: int
    deadline: int
    submitted: int
    eligible: int
    default_hint = "wait for the deadline, or for every eligible member to submit"


class NotEligible(LedgerRevert):
    fields = ("roundId", "participant")
    roundId: int
    participant: str
    default_hint = "a member registered while a round is open takes part from the next round"


class EmptyDescriptor(LedgerRevert):
    fields = ()


class EmptyKey(LedgerRevert):
    fields = ("participant",)
    participant: str


class EmptyUpdate(LedgerRevert):
    fields = ("roundId",)
    roundId: int


class NoSamples(LedgerRevert):
    fields = ("roundId",)
    roundId: int


class AlreadySubmitted(LedgerRevert):
    fields = ("roundId", "participant", "update")
    roundId: int
    participant: str
    update: bytes


class QuorumNotReached(LedgerRevert):
    fields = ("have", "need")
    have: int
    need: int
    default_hint = "a round is finalized with at least the quorum of aggregated updates; otherwise it is aborted"


class QuorumReached(LedgerRevert):
    fields = ("roundId", "submissions", "quorum", "abortableAt")
    roundId: int
    submissions: int
    quorum: int
    abortableAt: int
    default_hint = "a round that reached the quorum can only be finalized, or aborted once its grace period is over"


class GraceNotOver(LedgerRevert):
    fields = ("roundId", "account", "abortableAt")
    roundId: int
    account: str
    abortableAt: int
    default_hint = "only the coordinator may abort before the round's deadline plus the grace period"


class LengthMismatch(LedgerRevert):
    fields = ("participants", "scores")
    participants: int
    scores: int


class NotSubmitter(LedgerRevert):
    fields = ("roundId", "participant")
    roundId: int
    participant: str


class AlreadyScored(LedgerRevert):
    fields = ("roundId", "participant")
    roundId: int
    participant: str


class NotSecureAggregation(LedgerRevert):
    fields = ()
    default_hint = "this federation does not use secure aggregation"


class SharePhaseClosed(LedgerRevert):
    fields = ("roundId", "shareDeadline")
    roundId: int
    shareDeadline: int


class SharePhaseOpen(LedgerRevert):
    fields = ("roundId", "shareDeadline")
    roundId: int
    shareDeadline: int
    default_hint = "masked updates are submitted once the share phase has closed"


class AlreadyPublished(LedgerRevert):
    fields = ("roundId", "participant")
    roundId: int
    participant: str


class NotSharer(LedgerRevert):
    fields = ("roundId", "participant")
    roundId: int
    participant: str
    default_hint = "only members that published shares in the round may submit a masked update"


class NotRebaseTarget(LedgerRevert):
    fields = ("roundId",)
    roundId: int
    default_hint = "rebase onto a finalized round at or before the lineage's head (0 = genesis)"


class PageTooLarge(LedgerRevert):
    fields = ("limit", "maxLimit")
    limit: int
    maxLimit: int


def revert_classes() -> dict[str, type[LedgerRevert]]:
    """Every custom-error class by its Solidity name."""
    return {
        cls.__name__: cls
        for cls in LedgerRevert.__subclasses__()
        if cls is not UnknownRevert
    }


class InvalidArgument(LedgerError):
    """A value passed to the client cannot be sent to the contract (wrong size, range or format)."""
