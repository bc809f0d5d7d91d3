"""What the composition root built, handed to request handlers: the one Settings object, the MQTT
link (None without a broker), the live-update notifier and the endpoint secrets' sealer. Nothing
here reads the environment."""

from typing import Annotated

from fastapi import Depends, Request

from cloud.attention.sealing import Sealer
from cloud.mqtt import MqttLink
from cloud.notify import Notifier
from cloud.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_mqtt(request: Request) -> MqttLink | None:
    link: MqttLink | None = request.app.state.mqtt
    return link


def get_notifier(request: Request) -> Notifier:
    notifier: Notifier = request.app.state.notifier
    return notifier


def get_sealer(request: Request) -> Sealer:
    sealer: Sealer = request.app.state.sealer
    return sealer


AppSettings = Annotated[Settings, Depends(get_settings)]
EndpointSealer = Annotated[Sealer, Depends(get_sealer)]
Mqtt = Annotated[MqttLink | None, Depends(get_mqtt)]
LiveUpdates = Annotated[Notifier, Depends(get_notifier)]
