"""The text QR code of a claim token scans back to the token (decoded by OpenCV from a picture of it)."""

import cv2
import numpy as np

from provisioning.qr import qr_text

HALF = {" ": (0, 0), "\u2580": (1, 0), "\u2584": (0, 1), "\u2588": (1, 1)}


def test_text_qr_decodes_to_the_token() -> None:
    token = "mct_3q2Yb0TgXh1m8N1x0k4yVwJ9pQzR5sLd"
    lines = qr_text(token).split("\n")
    rows: list[list[int]] = []
    for line in lines:
        top, bottom = zip(*(HALF[ch] for ch in line), strict=True)
        rows += [list(top), list(bottom)]
    modules = np.array(rows, dtype=np.uint8)
    dark_on_white = np.pad(np.where(modules == 1, 0, 255).astype(np.uint8), 4, constant_values=255)
    picture = cv2.resize(dark_on_white, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)
    decoded, _, _ = cv2.QRCodeDetector().detectAndDecode(picture)
    assert decoded == token
