"""Claim tokens as text QR codes: printable from a terminal, scannable from paper or a screen."""

import qrcode  # type: ignore[import-untyped]
from qrcode.constants import ERROR_CORRECT_M  # type: ignore[import-untyped]


def qr_text(data: str) -> str:
    """The QR code of `data` drawn with half blocks: two module rows per text line, quiet zone kept."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=2)
    code.add_data(data)
    code.make(fit=True)
    rows = code.get_matrix()
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    # Dark modules are drawn as blocks: right on paper and light screens (a dark terminal shows
    # it inverted, which phone scanners read too).
    glyph = {(False, False): " ", (True, False): "\u2580", (False, True): "\u2584", (True, True): "\u2588"}
    return "\n".join(
        "".join(glyph[(top, bottom)] for top, bottom in zip(rows[i], rows[i + 1], strict=True))
        for i in range(0, len(rows), 2)
    )
