"""Flow data: the unified attack taxonomy, feature schemas, loaders for the public
intrusion data sets, a synthetic generator and the partitioner that splits data
among organisations.
"""

from fedledger.data.dataset import FlowDataset
from fedledger.data.errors import (
    DataError,
    MalformedRow,
    PartitionError,
    SchemaError,
    UnknownLabel,
)

__all__ = [
    "DataError",
    "FlowDataset",
    "MalformedRow",
    "PartitionError",
    "SchemaError",
    "UnknownLabel",
]
