"""The participant role: one organisation trains on its own flows and submits encoded updates.

- :mod:`participant.update`: the one function that makes a member's update for a round;
- :mod:`participant.dp_training`: local training under DP (plain training is :mod:`federation.training`,
  in the core because the audit re-runs it to re-derive a pretrained genesis model);
- :mod:`participant.budget`: the member's privacy history and budget on disk;
- :mod:`participant.compression`: error feedback for lossy codecs;
- :mod:`participant.service`: the service that follows the chain round by round.

It meets the coordinator only through the chain and the store, and never imports it.
"""
