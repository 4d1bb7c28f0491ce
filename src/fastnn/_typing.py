"""The array types of fastnn's annotations (for type checkers; nothing here runs any check)."""
import os
from typing import Any, Union

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]    # float32 or float64 (parameters, logits, gradients)
IntArray = npt.NDArray[np.integer[Any]]       # labels, row indices, predictions
ArrayLike = npt.ArrayLike                     # anything np.asarray takes (validated at the boundary)
PathLike = Union[str, "os.PathLike[str]"]      # a file name
