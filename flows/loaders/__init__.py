"""Readers for the public flow data sets; each returns raw flows plus a load report.

Every reader takes a file or a directory of files, ``on_bad_row`` ("error" or
"skip") for malformed rows and ``unknown_labels`` ("error", "unknown" or "skip")
for attack names no taxonomy table knows.
"""

from flows.loaders import cicids2017, nsl_kdd, unsw_nb15
from flows.loaders.rows import LoadReport

READERS = {
    "nsl-kdd": nsl_kdd,
    "unsw-nb15": unsw_nb15,
    "cicids2017": cicids2017,
}

__all__ = ["READERS", "LoadReport", "cicids2017", "nsl_kdd", "unsw_nb15"]
