"""What a station prints: one line per alert an officer can act on, and one per change of state.

An alert line gives the local time with its zone, the site's name, address and position, the rule
in words, the count and the alert page's address in the console (when the station knows the
console's URL). A state line names the alert it changes (rule and site, remembered from the alert
line) and the officer's note. `--json` prints the same fields as one JSON object per line, with
the payload itself under "alert" / "state".

With a language (`--lang`, or the locale's) every word is that language's, from the catalogues
(matthan/vocabulary.py names the rule types and states; docs/glossary-vi.md); without one
(a `C` locale) the lines keep both languages side by side, Vietnamese first.
"""

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from matthan import vocabulary
from matthan.display import STATE_WORDS, local_time, rule_words, site_line
from matthan.i18n import format_moment, translate
from matthan_wire import Alert, AlertState

DEFAULT_TZ = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True)
class Shown:
    """What a state line needs to name its alert."""

    rule: str
    site: str


class LineWriter:
    def __init__(
        self, *, tz: ZoneInfo, console_url: str | None = None, remember: int = 10_000, lang: str | None = None
    ) -> None:
        self.tz = tz
        self.lang = lang
        self.console_url = console_url.rstrip("/") if console_url else None
        self.remember = remember
        self._shown: OrderedDict[str, Shown] = OrderedDict()

    def _rule(self, a: Alert) -> str:
        if self.lang is None:
            return rule_words(a.type, a.rule_title)
        return a.rule_title or vocabulary.name(self.lang, a.type, vocabulary.RULE_TYPES)

    def _time(self, at: datetime) -> str:
        if self.lang is None:
            return local_time(at, self.tz)
        return f"{format_moment(at, self.lang, self.tz)} ({self.tz.key})"

    def _state(self, state: str) -> str:
        if self.lang is None:
            return STATE_WORDS.get(state, state)
        return vocabulary.name(self.lang, state, vocabulary.ALERT_STATES)

    def url(self, event_id: str) -> str | None:
        return f"{self.console_url}/console/alerts/{event_id}" if self.console_url else None

    def alert_fields(self, a: Alert) -> dict[str, Any]:
        where = site_line(a.site) or f"{a.device_id}/{a.camera_id}"
        self._shown[a.event_id] = Shown(self._rule(a), where)
        if len(self._shown) > self.remember:
            self._shown.popitem(last=False)
        return {
            "kind": "alert",
            "event_id": a.event_id,
            "local_time": self._time(a.started_at),
            "site": a.site.model_dump(mode="json") if a.site else None,
            "where": where,
            "rule": self._rule(a),
            "zone": a.zone_title or a.zone,
            "count": a.object_count,
            "device": a.device_id,
            "camera": a.camera_id,
            "url": self.url(a.event_id),
        }

    def alert_line(self, a: Alert) -> str:
        f = self.alert_fields(a)
        zone = f"  ({f['zone']})" if f["zone"] else ""
        url = f"  {f['url']}" if f["url"] else f"  event={a.event_id}"
        return f"{f['local_time']}  {f['rule']}{zone}  ×{f['count']}  {f['where']}{url}"

    def alert_json(self, a: Alert) -> str:
        f = self.alert_fields(a)
        f["alert"] = json.loads(a.model_dump_json())
        return json.dumps(f, ensure_ascii=False)

    def state_fields(self, s: AlertState) -> dict[str, Any]:
        shown = self._shown.get(s.event_id)
        return {
            "kind": "state",
            "event_id": s.event_id,
            "local_time": self._time(s.at),
            "state": s.state,
            "state_words": self._state(s.state),
            "by": s.by,
            "note": s.note,
            "rule": shown.rule if shown else None,
            "where": shown.site if shown else None,
            "url": self.url(s.event_id),
        }

    def state_line(self, s: AlertState) -> str:
        f = self.state_fields(s)
        what = f"{f['rule']} — {f['where']}" if f["rule"] else f"event={s.event_id}"
        lang = self.lang or "en"
        by = translate(lang, " by %(who)s", who=f["by"]) if f["by"] else ""
        note = translate(lang, '  note: "%(note)s"', note=f["note"]) if f["note"] else ""
        url = f"  {f['url']}" if f["url"] else ""
        return f"{f['local_time']}  → {f['state_words']}{by}: {what}{note}{url}"

    def state_json(self, s: AlertState) -> str:
        f = self.state_fields(s)
        f["state_payload"] = json.loads(s.model_dump_json())
        return json.dumps(f, ensure_ascii=False)
