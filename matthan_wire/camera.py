"""One camera of a device: its streams (one source, or inputs with the roles detect/record), where
it stands (Site), and how it is watched: detection, motion gating, recording, the tamper check,
and its zones and lines (matthan_wire/rules.py).
"""

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field, model_validator

from matthan_wire.config_base import MAX_SECONDS, Strict, absent
from matthan_wire.ids import Id, Label
from matthan_wire.rules import Line, Zone, rule_name


class Site(Strict):
    """Where a camera stands: what an officer needs to go there without a lookup."""

    name: str = Field(min_length=1, max_length=200)
    address: str | None = Field(default=None, min_length=1, max_length=500)
    lat: float | None = Field(default=None, ge=-90.0, le=90.0)
    lon: float | None = Field(default=None, ge=-180.0, le=180.0)

    @model_validator(mode="after")
    def _position_whole(self) -> "Site":
        if (self.lat is None) != (self.lon is None):
            raise ValueError("site: lat and lon go together (both or neither)")
        return self


class DetectConfig(Strict):
    fps: float = Field(default=5.0, gt=0.0, le=60.0)
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    # Per-label floor, e.g. {person: 0.6}: generic models see people in bins and shadows.
    min_scores: dict[Label, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict, max_length=256
    )


class MotionConfig(Strict):
    enabled: bool = True
    # Fraction of the downscaled frame that must change for the detector to run.
    min_area: float = Field(default=0.002, gt=0.0, lt=1.0)
    threshold: int = Field(default=25, ge=1, le=255)
    # Tracked objects are re-checked at this rate even without motion.
    recheck_s: float = Field(default=1.0, gt=0.0, le=MAX_SECONDS)


class RecordConfig(Strict):
    enabled: bool = True
    pre_capture_s: float = Field(default=5.0, ge=0.0, le=60.0)
    post_capture_s: float = Field(default=5.0, ge=0.0, le=60.0)
    segment_s: float = Field(default=2.0, gt=0.0, le=60.0)


class TamperConfig(Strict):
    """Camera tamper check (covered, blinded, defocused, moved) against the camera's own reference."""

    enabled: bool = True
    # How often the view is compared with the reference (on a 160 px grey frame, ~2.5 ms of CPU).
    # Every 2 s is 30 checks within the default persist_s: plenty to tell a bag over the lens from
    # a bus in front, at half the CPU of checking every second (16 cameras: ~1 % of the device).
    check_every_s: float = Field(default=2.0, ge=0.2, le=60.0)
    # Normal view needed to learn the reference before anything is judged (after start or a confirm).
    learn_s: float = Field(default=60.0, ge=2.0, le=3600.0)
    # A tampered view must last this long before the alert: a bus in front or headlights do not.
    persist_s: float = Field(default=60.0, ge=2.0, le=3600.0)
    # The view must be normal again this long before the alert ends.
    clear_s: float = Field(default=10.0, ge=1.0, le=3600.0)
    # Time constant with which the reference follows slow change (dusk, shadows, a parked car).
    adapt_s: float = Field(default=600.0, ge=10.0, le=86400.0)
    # A view shifted by more than this fraction of the frame counts as moved.
    min_shift: float = Field(default=0.04, gt=0.0, le=0.5)
    # Sharpness below this fraction of the reference's counts as defocused.
    defocus_ratio: float = Field(default=0.35, gt=0.0, lt=1.0)
    # Contrast below this fraction of the reference's counts as covered (or blinded when bright).
    contrast_ratio: float = Field(default=0.25, gt=0.0, lt=1.0)


InputRole = Literal["detect", "record"]
# Sources the capture opens itself and holds: nobody else can open them a second time.
_HELD_PREFIXES = ("picamera2:", "/dev/")


def _is_none(value: object) -> bool:
    return value is None


def _held(source: str) -> bool:
    return source.startswith(_HELD_PREFIXES) or source.isdigit()


class CameraInput(Strict):
    """One stream of a camera and what it is used for: `detect` (the low-resolution sub-stream the
    detector reads) and/or `record` (the main stream the evidence clips are cut from)."""

    source: str = Field(min_length=1, max_length=2048)
    roles: list[InputRole] = Field(min_length=1, max_length=2)

    @model_validator(mode="after")
    def _roles_once(self) -> "CameraInput":
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"input roles {self.roles}: a role is listed twice")
        return self


class CameraConfig(Strict):
    id: Id
    # One stream for both detection and recording; or `inputs` with roles (not both).
    # Unused, they are left out of the JSON: a camera that needs neither `inputs` nor `hwaccel`
    # serialises as before they existed, so an older agent (extra fields forbidden) still takes it.
    source: str | None = Field(default=None, min_length=1, max_length=2048, exclude_if=_is_none)
    inputs: list[CameraInput] | None = Field(default=None, min_length=1, max_length=2, exclude_if=_is_none)
    # Hardware video decoding: "auto" uses it when the device has it (and says so in the log),
    # software otherwise; "off" always decodes in software.
    hwaccel: Literal["auto", "off"] = Field(default="auto", exclude_if=lambda v: v == "auto")
    name: str | None = Field(default=None, max_length=200)
    # Where the camera stands; alerts carry it so a station needs no lookup.
    site: Site | None = Field(default=None, exclude_if=absent)
    loop: bool = False
    detect: DetectConfig = Field(default_factory=DetectConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    offline_debounce_s: float = Field(default=60.0, ge=0.0, le=MAX_SECONDS)
    tamper: TamperConfig = Field(default_factory=TamperConfig)
    zones: list[Zone] = Field(default_factory=list, max_length=64)
    lines: list[Line] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _sources(self) -> "CameraConfig":
        if (self.source is None) == (self.inputs is None):
            raise ValueError(
                f"camera {self.id!r}: give either `source` (one stream for both detection and recording) "
                "or `inputs` (streams with roles detect/record), not both and not neither"
            )
        if self.inputs is not None:
            for role in ("detect", "record"):
                n = sum(role in i.roles for i in self.inputs)
                if n != 1:
                    raise ValueError(
                        f"camera {self.id!r}: exactly one input needs the role {role!r} ({n} have it); "
                        "to record nothing set record.enabled: false"
                    )
            for i in self.inputs:
                if _held(i.source) and len(i.roles) != 2:
                    raise ValueError(
                        f"camera {self.id!r}: {i.source} can be opened once only; "
                        "it must serve both roles (roles: [detect, record])"
                    )
            sources = [i.source for i in self.inputs]
            if len(set(sources)) != len(sources):
                raise ValueError(
                    f"camera {self.id!r}: the same source is listed as two inputs; give it both roles"
                )
        return self

    def _role(self, role: InputRole) -> str:
        if self.inputs is None:
            assert self.source is not None
            return self.source
        return next(i.source for i in self.inputs if role in i.roles)

    @property
    def detect_source(self) -> str:
        """The stream the detector reads (the sub-stream)."""
        return self._role("detect")

    @property
    def record_source(self) -> str:
        """The stream clips and high-resolution snapshots come from (the main stream)."""
        return self._role("record")

    @property
    def sources(self) -> list[str]:
        """Every distinct source of the camera, detect first."""
        out = [self.detect_source]
        return out if self.record_source == out[0] else [*out, self.record_source]

    def with_sources(self, change: Callable[[str], str]) -> "CameraConfig":
        """The same camera with every source passed through `change` (resolve a path, hide a password)."""
        if self.inputs is None:
            assert self.source is not None
            return self.model_copy(update={"source": change(self.source)})
        inputs = [i.model_copy(update={"source": change(i.source)}) for i in self.inputs]
        return self.model_copy(update={"inputs": inputs})

    @model_validator(mode="after")
    def _unique_names(self) -> "CameraConfig":
        places = [z.name for z in self.zones] + [ln.name for ln in self.lines]
        dup = {n for n in places if places.count(n) > 1}
        if dup:
            raise ValueError(f"camera {self.id!r}: zone/line names used twice: {sorted(dup)}")
        places_: list[Zone | Line] = [*self.zones, *self.lines]
        names = [rule_name(p, r) for p in places_ for r in p.rules]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(
                f"camera {self.id!r}: two rules share the name(s) {sorted(dup)}; give each a `name`"
            )
        return self
