"""Flow data: the unified attack taxonomy, feature schemas, loaders for the public
intrusion data sets, a synthetic generator and the partitioner that splits data
among organisations.

``fedledger.data.partition.partition`` and ``fedledger.data.synthetic.generate``
live in their modules (not re-exported here, so the module names stay usable).
"""

from fedledger.data.dataset import FlowDataset
from fedledger.data.errors import (
    DataError,
    MalformedRow,
    PartitionError,
    SchemaError,
    UnknownLabel,
)
from fedledger.data.load import (
    DATASETS,
    LoadedSplit,
    load_dataset,
    load_split,
    local_stats,
    read_raw,
    schema_for,
)
from fedledger.data.loaders.rows import LoadReport
from fedledger.data.schema import FeatureSchema, LocalStats, Normaliser, RawFlows, merge

__all__ = [
    "DATASETS",
    "DataError",
    "FeatureSchema",
    "FlowDataset",
    "LoadReport",
    "LoadedSplit",
    "LocalStats",
    "MalformedRow",
    "Normaliser",
    "PartitionError",
    "RawFlows",
    "SchemaError",
    "UnknownLabel",
    "load_dataset",
    "load_split",
    "local_stats",
    "merge",
    "read_raw",
    "schema_for",
]
