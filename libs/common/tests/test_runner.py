"""runner.Runtime: the settings of the services a service calls, and channels to them."""

from __future__ import annotations

from contextlib import AsyncExitStack

import grpc
import pytest
from pydantic_settings import SettingsConfigDict

from acme_common._runner import Runtime
from acme_common._settings import ClientSettings


class PeerClientSettings(ClientSettings):
    model_config = SettingsConfigDict(env_prefix="PEER_", frozen=True, extra="ignore")


class OtherClientSettings(ClientSettings):
    model_config = SettingsConfigDict(env_prefix="OTHER_", frozen=True, extra="ignore")


async def test_runtime_hands_out_client_settings_and_closes_its_channels() -> None:
    peer = PeerClientSettings(target="127.0.0.1:1")
    async with AsyncExitStack() as exit_stack:
        runtime = Runtime([peer], None, exit_stack)
        assert runtime.client(PeerClientSettings) is peer
        with pytest.raises(LookupError, match="OtherClientSettings"):
            runtime.client(OtherClientSettings)
        channel = runtime.channel(PeerClientSettings, retry_services=["test.v1.Peer"])
        assert channel.get_state() == grpc.ChannelConnectivity.IDLE
    with pytest.raises(grpc.aio.UsageError):  # closed with the exit stack
        await channel.unary_unary("/test.v1.Peer/Call", None, None)(b"", timeout=1)
