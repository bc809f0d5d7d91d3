"""The frame that travels from capture to the detect stage."""

from dataclasses import dataclass
from datetime import datetime

import numpy as np


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR, HxWx3 uint8, as OpenCV gives it
    ts: datetime  # UTC; for files: start time + the frame's position in the file
    index: int  # frame number from the source (monotonic per stream session)
