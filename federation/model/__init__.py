"""The detection model: its spec, the canonical model file and (in ``network``) the torch MLP.

``federation.model`` re-exports the spec and the file format, which need no torch;
import :mod:`federation.model.network` for the module itself.
"""

from federation.model.files import (
    MODEL_FILE_FORMAT,
    InvalidModelFile,
    check_weights,
    load_model_bytes,
    model_digest,
    save_model_bytes,
)
from federation.model.spec import (
    ACTIVATIONS,
    MAX_PARAMETERS,
    SPEC_VERSION,
    InvalidModelSpec,
    ModelSpec,
)

__all__ = [
    "ACTIVATIONS",
    "MAX_PARAMETERS",
    "MODEL_FILE_FORMAT",
    "SPEC_VERSION",
    "InvalidModelFile",
    "InvalidModelSpec",
    "ModelSpec",
    "check_weights",
    "load_model_bytes",
    "model_digest",
    "save_model_bytes",
]
