"""Flow data: the unified attack taxonomy, feature schemas, loaders for the public
intrusion data sets, a synthetic generator and the partitioner that splits data
among organisations.

``flows.partition.partition`` and ``flows.synthetic.generate``
live in their modules (not re-exported here, so the module names stay usable).
"""

from flows.dataset import FlowDataset
from flows.errors import (
    DataError,
    MalformedRow,
    PartitionError,
    SchemaError,
    UnknownLabel,
)
from flows.load import (
    DATASETS,
    LoadedSplit,
    load_dataset,
    load_split,
    local_stats,
    read_raw,
    schema_for,
)
from flows.loaders.rows import LoadReport
from flows.schema import FeatureSchema, LocalStats, Normaliser, RawFlows, merge

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
