"""Secure aggregation: members' updates masked so that only their sum is ever in the clear, and still re-derivable.

- :mod:`federation.secagg.params`: the descriptor's parameters (threshold, members, clip, weight cap);
- :mod:`federation.secagg.quantise`: updates and weights as fixed point in Z_2^32;
- :mod:`federation.secagg.prg`: key agreement, key derivation and mask expansion;
- :mod:`federation.secagg.shares`: Shamir shares, signed and encrypted, and the share and reveal bundles;
- :mod:`federation.secagg.masked`: the masked update file;
- :mod:`federation.secagg.protocol`: a member's side of a round (deal, mask, reveal);
- :mod:`federation.secagg.unmask`: removing the masks, for the coordinator and every auditor.
"""

from federation.secagg.masked import decode_masked, encode_masked
from federation.secagg.params import MODE, InvalidSecureParams, SecureParams
from federation.secagg.protocol import (
    RoundSecrets,
    SecureRound,
    SecureRoundError,
    check_bundle,
    deal,
    mask_vector,
    reveal,
)
from federation.secagg.quantise import decode_sum, quantise_update, vector_length
from federation.secagg.shares import InvalidBundle, RevealBundle, ShareBundle
from federation.secagg.unmask import (
    Finding,
    MaskedSubmission,
    Unmasked,
    UnmaskError,
    unmask,
)

__all__ = [
    "MODE",
    "Finding",
    "InvalidBundle",
    "InvalidSecureParams",
    "MaskedSubmission",
    "RevealBundle",
    "RoundSecrets",
    "SecureParams",
    "SecureRound",
    "SecureRoundError",
    "ShareBundle",
    "UnmaskError",
    "Unmasked",
    "check_bundle",
    "deal",
    "decode_masked",
    "decode_sum",
    "encode_masked",
    "mask_vector",
    "quantise_update",
    "reveal",
    "unmask",
    "vector_length",
]
