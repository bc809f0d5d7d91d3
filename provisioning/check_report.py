"""The checklist's results: as the technician reads them (a table in the process's language:
matthan --lang, the locale) and as the cloud keeps them (the commissioning report, English: data).

An item's detail is a `Msg` (or a `Joined` of them) until it is shown: the table translates it, the
report sends its English text.
"""

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import httpx

from matthan import i18n
from matthan.i18n import N_, Joined, Msg, _
from matthan_wire.config import DeviceConfig
from matthan_wire.enrollment import CheckItem, CommissioningReport
from provisioning.errors import ProvisionError

NETWORK_TIMEOUT_S = 5.0

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Checked:
    """One item's result; `detail` keeps its text's parameters until the reader is known."""

    name: str
    status: Status
    detail: str  # a Msg or Joined; a plain str (an error's own text) is shown as it is
    ms: float | None = None

    def words(self, lang: str) -> str:
        d = self.detail
        return d.translated(lang) if isinstance(d, Msg | Joined) else d

    def item(self) -> CheckItem:
        """What the cloud's commissioning record keeps: the English text."""
        return CheckItem(name=self.name, status=self.status, detail=str(self.detail), ms=self.ms)


MARKS = {"pass": N_("PASS"), "warn": N_("WARN"), "fail": N_("FAIL")}
ITEM_NAMES = {
    "certificate": N_("certificate"),
    "model": N_("model"),
    "broker": N_("broker"),
    "cloud": N_("cloud"),
    "clock": N_("clock"),
    "disk": N_("disk"),
    "cpu temperature": N_("cpu temperature"),
}


def item_name(name: str) -> str:
    if name.startswith("camera "):
        return _("camera %(camera)s", camera=name.removeprefix("camera "))
    return _(ITEM_NAMES[name]) if name in ITEM_NAMES else name


def table(items: list[Checked]) -> str:
    names = [item_name(i.name) for i in items]
    marks = [_(MARKS[i.status]) for i in items]
    head = (_("item"), _("result"), _("detail"))
    width = max(len(n) for n in [*names, head[0]])
    mark_w = max(len(m) for m in [*marks, head[1]])
    lang = i18n.language()
    lines = [f"{head[0]:<{width}}  {head[1]:<{mark_w}}  {head[2]}", f"{'-' * width}  {'-' * mark_w}  ------"]
    lines += [
        f"{n:<{width}}  {m:<{mark_w}}  {i.words(lang)}" for n, m, i in zip(names, marks, items, strict=True)
    ]
    fails = sum(i.status == "fail" for i in items)
    warns = sum(i.status == "warn" for i in items)
    lines.append(
        _(
            "%(fails)d fail, %(warns)d warn, %(passes)d pass",
            fails=fails,
            warns=warns,
            passes=len(items) - fails - warns,
        )
    )
    return "\n".join(lines)


def send_report(config: DeviceConfig, items: list[Checked], by: str, at: datetime) -> None:
    if config.cloud is None or config.cloud.token_file is None:
        raise ProvisionError(Msg("report not sent: no cloud token in the config (enroll first)"))
    try:
        token = Path(config.cloud.token_file).read_text().strip()
    except OSError as exc:
        raise ProvisionError(
            Msg("report not sent: %(file)s: %(error)s", file=config.cloud.token_file, error=exc.strerror)
        ) from None
    report = CommissioningReport(
        by=by, at=at, ok=not any(i.status == "fail" for i in items), items=[i.item() for i in items]
    )
    url = f"{config.cloud.url.rstrip('/')}/api/v1/devices/{config.device.id}/commissioning"
    try:
        resp = httpx.post(
            url,
            content=report.model_dump_json(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                # The cloud's refusal, if any, in the technician's language.
                "Accept-Language": i18n.language(),
            },
            timeout=NETWORK_TIMEOUT_S,
            verify=config.cloud.ca or True,
        )
    except httpx.HTTPError as exc:
        raise ProvisionError(
            Msg("report not sent to %(url)s: %(error)s", url=url, error=f"{exc.__class__.__name__}: {exc}")
        ) from None
    if resp.status_code >= 300:
        raise ProvisionError(
            Msg(
                "report refused by the cloud (HTTP %(status)d): %(answer)s",
                status=resp.status_code,
                answer=resp.text[:200],
            )
        )


def technician() -> str:
    return (
        os.environ.get("MATTHAN_TECHNICIAN")
        or os.environ.get("SUDO_USER")
        or os.environ.get("USER")
        or "unknown"
    )
