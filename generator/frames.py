"""pandas, set up the one way this project uses it. Import `pd` from here, never pandas itself.

pandas 3 stores strings with pyarrow when pyarrow is installed (Ray Data brings it), and pyarrow refuses the
surrogate escapes that stand for undecodable bytes in file names (`UnicodeEncodeError: surrogates not
allowed`). Python's own str storage keeps every name a file system can hold, as pandas does without pyarrow.
"""

from __future__ import annotations

import pandas as pd

pd.set_option("mode.string_storage", "python")

__all__ = ["pd"]
