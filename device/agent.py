"""`matthan device run`: the composition root of the edge agent.

Builds its parts in dependency order, starts them in that order and stops them in reverse: the
outbox (on disk), the MQTT link and the outbox publisher, the recording and uploads
(device/media.py), the cameras (capture → detect → rules → events), the control loop (config sync,
commands, camera-offline watch, the watchdog; device/control.py), and health. Every event enters
through device/alert_intake.py, which commits it to the outbox before anything else happens to it:
what is not yet receipted survives a stop or a crash and is replayed on the next start.

Hooks for recording and uploads: `clip_sink` receives every event start and end after it is in the
outbox; `uploads` tells health the upload backlog.
"""

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from device.agent_lock import AgentLock
from device.alert_intake import AlertIntake, EventSink
from device.camera_worker import CameraStats
from device.cameras import Cameras, FrameHook
from device.commands import CommandHandler, CommandTargets
from device.config_file import model_of
from device.config_sync import STATE_FILE, ConfigSync, load_applied
from device.control import ControlLoop
from device.errors import DeviceError
from device.events import DetectedEvent
from device.health import CameraView, HealthMonitor, UploadView
from device.media import DeviceMedia
from device.offline import OfflineWatch
from device.outbox import Outbox
from device.outbox_publisher import OutboxPublisher
from device.sd_notify import SdNotify
from device.site_check import check_site
from device.switch_interval import favour_latency
from matthan.mqtt import MqttLink
from matthan_wire import Health, Kind, ReportedConfig, encode
from matthan_wire.config import DeviceConfig, SiteConfig
from matthan_wire.topics import device_topic

log = logging.getLogger("matthan.device.agent")


class Agent:
    def __init__(
        self,
        config: DeviceConfig,
        *,
        clip_sink: EventSink | None = None,
        uploads: Callable[[], UploadView] | None = None,
        media: Callable[[DeviceConfig, Callable[[], int | None]], DeviceMedia] | None = None,
        publish_window: int = 100,
    ) -> None:
        # In dependency order; every callback below is a method, so nothing refers to a part that
        # is not built yet. Nothing connects or starts here: start() does, in the same order.
        self.storage = _storage_folder(config)
        self.state_path = self.storage / STATE_FILE
        config, version = _effective_config(config, self.state_path)
        self.config = config
        self.device = config.device
        self.model = model_of(config)
        self._notify = SdNotify.from_env()
        self._lock = AgentLock(self.storage)
        self._switch_before = sys.getswitchinterval()

        # 1. The desired-config state (applied, reported), which the media's sidecars quote.
        self.config_sync = ConfigSync(
            self.state_path,
            apply=self._apply_site,
            publish=self._publish_reported,
            check=check_site,
            version=version,
        )
        # 2. Recording, clips and uploads follow the effective config (the last applied one).
        self.media = media(config, self._config_version) if media is not None else None
        if self.media is not None:
            clip_sink = clip_sink or self.media
            uploads = uploads or self.media.upload_view
        # 3. The outbox may hold at most a quarter of the storage budget; recordings and clips (the
        # retention part) have the rest.
        self.outbox = Outbox(
            self.storage / "outbox.db", config.outbox, max_bytes=config.storage.budget_mb * 2**20 // 4
        )
        # 4. The MQTT link and the publisher that feeds it from the outbox.
        self._topics = _topics(config)
        self.link = MqttLink(
            config.broker,
            self.device.id,
            subscriptions=[(self._topics[k], 1) for k in (Kind.RECEIPT, Kind.CONFIG_DESIRED, Kind.CMD)],
            on_message=self._on_message,
            on_published=self._on_published,
            on_connected=self._on_connected,
            status_topic=self._topics[Kind.STATUS],
            # Room beyond the outbox window for status, reports, results and health.
            max_inflight=publish_window + 20,
        )
        self.publisher = OutboxPublisher(self.outbox, self.link, window=publish_window)
        # 5. Where every event enters: into the outbox first, then to the publisher and the clips.
        self.intake = AlertIntake(self.outbox, self.publisher, self.link, self._topics, clip_sink)
        # 6. The cameras, the watch on their streams, and what acts on them for the cloud.
        self.offline = OfflineWatch(self.device, self.outbox.next_seq, self._on_event)
        self.cameras = Cameras(
            self.device,
            self.model,
            self._on_event,
            self.outbox.next_seq,
            self._frame_hook,
            self.offline,
            tamper_dir=self.storage / "tamper",
        )
        self.commands = CommandHandler(
            self.device.id,
            self.device.ward,
            CommandTargets(
                cameras=self._camera_ids,
                latest_frame=self.cameras.latest_frame,
                restart_camera=self.restart_camera,
                resync_config=self._resync_config,
                publish=self._publish_result,
                confirm_view=self.cameras.confirm_view,
            ),
        )
        # 7. The control loop: desired config and commands from the link, the offline check, the
        # watchdog.
        self.control = ControlLoop(
            desired=self.config_sync.handle_desired,
            command=self.commands.handle,
            connected=self._after_connect,
            check_offline=self._check_offline,
            notify=self._notify,
            storage=self.storage,
            dead=self._dead_parts,
        )
        # 8. Health, last: it reads every part above.
        self.health = HealthMonitor(
            self.device.id,
            self.device.ward,
            self.storage,
            outbox=self.publisher.stats,
            cameras=self._camera_views,
            config_version=self._config_version,
            model=Path(self.model.path).name,
            publish=self._publish_health,
            interval_s=config.health.interval_s,
            uploads=uploads,
        )

    # ---- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self._lock.take()
        except DeviceError:
            self.outbox.close()
            raise
        self._switch_before = favour_latency()
        log.info(
            "agent starting device=%s ward=%s cameras=%d outbox_depth=%d",
            self.device.id,
            self.device.ward,
            len(self.config.cameras),
            self.outbox.depth(),
        )
        self.link.start()
        self.publisher.start()
        try:
            # Recording before the cameras: an event's pre-capture must already be on disk.
            if self.media is not None:
                self.media.start()
            self.cameras.start(self.config.cameras)
        except BaseException:
            self.stop()
            raise
        # Ready once capture and the link are up; the control loop's watchdog pets follow.
        self._notify.send("READY=1")
        self.control.start()
        self.health.start()
        log.info("agent running device=%s", self.device.id)

    def stop(self) -> None:
        """Reverse order. Cameras stop before the publisher so their last events are in the outbox;
        what is not yet receipted stays there for the next start."""
        self._notify.send("STOPPING=1")
        self.health.stop()
        self.control.stop()
        self.cameras.stop()
        if self.media is not None:
            self.media.stop()
        self.publisher.stop()
        self.link.stop()
        depth = self.outbox.depth()
        self.outbox.close()
        self._lock.release()
        sys.setswitchinterval(self._switch_before)
        log.info("agent stopped device=%s outbox_depth=%d (kept for the next start)", self.device.id, depth)

    def run_until(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    # ---- callbacks the parts above call (after start) --------------------------------------------

    def _dead_parts(self) -> list[str]:
        dead = [] if self.publisher.alive else ["outbox-publisher"]
        detector = self.cameras.detector
        if detector is not None and not detector.alive:
            dead.append("detector")
        if self.media is not None:
            dead += self.media.dead_threads()
        return dead

    def _on_event(self, ev: DetectedEvent) -> None:
        """From a camera's detect thread (or the offline watch); never blocks on the network."""
        self.intake.take(ev)

    def _on_message(self, topic: str, payload: bytes) -> None:
        """Paho's network thread: enqueue only."""
        if topic == self._topics[Kind.RECEIPT]:
            self.publisher.on_receipt(payload)
        elif topic == self._topics[Kind.CONFIG_DESIRED]:
            self.control.desired(payload)
        elif topic == self._topics[Kind.CMD]:
            self.control.command(payload)
        else:
            log.warning("unexpected message topic=%s", topic)

    def _on_published(self, mid: int, ok: bool) -> None:
        self.publisher.on_published(mid, ok)

    def _on_connected(self) -> None:
        self.control.connected()

    def _after_connect(self) -> None:
        """On the control thread, after each (re)connect: what the broker may not have kept."""
        self.config_sync.republish()
        self.health.send_now()

    def _check_offline(self, now: float) -> None:
        self.cameras.check_offline(self.config.camera, now)

    def _config_version(self) -> int | None:
        return self.config_sync.version

    def _frame_hook(self, camera_id: str) -> FrameHook | None:
        return self.media.frame_hook(camera_id) if self.media is not None else None

    def _camera_views(self) -> list[CameraView]:
        return self.cameras.views(self.config.cameras, self._recording_up)

    def _recording_up(self, camera_id: str) -> bool | None:
        return self.media.recording_up(camera_id) if self.media is not None else None

    def _camera_ids(self) -> list[str]:
        return [c.id for c in self.config.cameras]

    def _publish_result(self, topic: str, payload: bytes) -> bool:
        return self.link.publish(topic, payload, qos=1) is not None

    # ---- config ----------------------------------------------------------------------------------

    def _apply_site(self, site: SiteConfig) -> None:
        """Switch to `site` as one step: the cameras first (which raise having changed nothing
        when one cannot start), then the config, health and media follow."""
        with self.cameras.lock:
            self.cameras.apply(self.config.cameras, site.cameras)
            self.config = self.config.with_site(site)
            self.health.interval_s = site.health.interval_s
            if self.media is not None:
                self.media.apply_cameras(list(site.cameras))

    def _publish_reported(self, report: ReportedConfig) -> bool:
        return (
            self.link.publish(self._topics[Kind.CONFIG_REPORTED], encode(report), qos=1, retain=True)
            is not None
        )

    def _resync_config(self) -> None:
        self.config_sync.report_current()
        self.link.resubscribe(self._topics[Kind.CONFIG_DESIRED], 1)

    # ---- cameras ---------------------------------------------------------------------------------

    def restart_camera(self, camera_id: str) -> None:
        with self.cameras.lock:
            self.cameras.restart(self.config.camera(camera_id))

    def camera_stats(self) -> dict[str, CameraStats]:
        return self.cameras.stats()

    def _publish_health(self, health: Health) -> bool:
        # QoS 0, latest wins: nothing is queued while the link is down.
        return self.link.publish(self._topics[Kind.HEALTH], encode(health), qos=0) is not None


def _storage_folder(config: DeviceConfig) -> Path:
    storage = Path(config.storage.path)
    try:
        storage.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeviceError(f"storage.path {storage}: {exc.strerror}") from None
    return storage


def _effective_config(config: DeviceConfig, state_path: Path) -> tuple[DeviceConfig, int | None]:
    """The last config the cloud set wins over the file's cameras: the device must come back as it
    was, even with no broker to ask. Returns the config and its version (None: the file's own)."""
    applied = load_applied(state_path)
    if applied is None:
        return config, None
    version, site = applied
    log.info("starting from applied config version=%d cameras=%d", version, len(site.cameras))
    return config.with_site(site), version


def _topics(config: DeviceConfig) -> dict[Kind, str]:
    ward, dev = config.device.ward, config.device.id
    kinds = (Kind.ALERT, Kind.EVENT, Kind.HEALTH, Kind.STATUS, Kind.RECEIPT, Kind.CONFIG_DESIRED)
    return {k: device_topic(k, ward, dev) for k in (*kinds, Kind.CONFIG_REPORTED, Kind.CMD)}


def run_agent(config_path: Path) -> int:
    """`matthan device run`: until SIGTERM or SIGINT, then a clean stop (exit 0)."""
    import signal

    from device.config_file import load_config

    config = load_config(config_path)
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    def media(cfg: DeviceConfig, version: Callable[[], int | None]) -> DeviceMedia:
        model = model_of(cfg).path
        return DeviceMedia(cfg, model=Path(model).name, model_path=model, config_version=version)

    Agent(config, media=media).run_until(stop)
    return 0
