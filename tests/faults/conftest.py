"""Fixtures the fault tests share: one real @tus/server per test module, and a fault proxy in
front of it for each test that needs one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fault_proxy import FaultProxy
from tests.support.tus_servers import TusServer, tus_node_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusServer]:
    with tus_node_server(tmp_path_factory.mktemp("tus-node")) as srv:
        yield srv


@pytest.fixture
def proxy(server: TusServer) -> Iterator[FaultProxy]:
    with FaultProxy(server.port) as prx:
        yield prx
