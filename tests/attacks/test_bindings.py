"""A descriptor other than the one the ledger was deployed for (issue 12.5), on a real anvil and store."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from contracts.anvil import LocalAnvil
from coordinator.service import CoordinatorError, CoordinatorService
from participant.service import ParticipantError, ParticipantService
from tests.helpers.runtime import make_env


def test_members_and_the_coordinator_refuse_a_descriptor_the_ledger_was_not_deployed_for(
    tmp_path: Path, chain: LocalAnvil
) -> None:
    """Before: the ledger committed to its descriptor only through the genesis model, whose
    weights come from a 63-bit seed taken from the descriptor's hash, so a deployer could
    birthday-search two descriptors with one genesis model (one strategy or scoring rule shown to
    members, another used); and a wrong descriptor CID in a member's or the coordinator's
    configuration was used silently.

    Now the ledger holds the descriptor's digest (an immutable set at deployment) and every
    service checks it at start: a descriptor that differs in any byte (here only the strategy
    and its name) is refused by the participant service and by the coordinator, each in one line
    naming the ledger, before anything runs; the right one is accepted."""
    env = make_env(tmp_path, chain)
    honest = env.fed.descriptor
    assert env.ledger.descriptor_digest() == honest.digest()
    other = dataclasses.replace(honest, name="test-other", strategy="fedavgm")
    assert other.digest() != honest.digest()
    other_cid = env.store.put(other.to_bytes())

    with pytest.raises(ParticipantError, match=f"not the one ledger {env.ledger.address} was deployed for") as refused:
        ParticipantService(
            env.ledger.with_account(env.orgs[0]), env.store, other, env.data[0], state_dir=tmp_path / "org0",
            descriptor_cid=other_cid,
        )
    assert refused.value.hint and "\n" not in str(refused.value)
    with pytest.raises(CoordinatorError) as refused_c:
        CoordinatorService(env.coordinator_ledger, env.store, other_cid)
    print(f"\nparticipant: {refused.value}\ncoordinator: {refused_c.value}")
    assert "descriptor" in str(refused_c.value)
    assert refused_c.value.hint and "\n" not in str(refused_c.value)
    env.participant(0)  # the deployed descriptor is accepted
    env.coordinator()
