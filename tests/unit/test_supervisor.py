"""The camera workers' supervisor: one worker per camera at a time, and no dock dropped.

A camera docked again while the worker of its previous dock is still finishing is taken in
once that worker is done (the soak found such docks dropped: the camera stayed docked and was
never taken in). A dock already waiting is not queued twice, and an undock cancels it.
"""

from __future__ import annotations

import threading
import time

from agent.runtime.supervisor import Job, Supervisor


def _settle(sup: Supervisor, until: threading.Event, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until.is_set() and time.monotonic() < deadline:
        sup.pump()
        time.sleep(0.01)
    assert until.is_set()


def test_a_dock_during_the_previous_worker_runs_after_it() -> None:
    sup = Supervisor(max_parallel=4)
    release = threading.Event()
    order: list[str] = []
    second_done = threading.Event()

    def first() -> None:
        release.wait(5)
        order.append("first")

    def second() -> None:
        order.append("second")
        second_done.set()

    sup.submit(Job("usb-CAM1", first))
    sup.submit(Job("usb-CAM1", second))  # docked again while the first still finishes
    sup.pump()
    assert order == [] and [j.key for j in sup.waiting] == ["usb-CAM1"]
    release.set()
    _settle(sup, second_done)
    assert order == ["first", "second"]


def test_a_waiting_dock_is_queued_once_and_an_undock_cancels_it() -> None:
    sup = Supervisor(max_parallel=4)
    release = threading.Event()
    ran: list[str] = []
    sup.submit(Job("usb-CAM1", lambda: release.wait(5)))
    sup.submit(Job("usb-CAM1", lambda: ran.append("again")))
    sup.submit(Job("usb-CAM1", lambda: ran.append("duplicate")))
    assert len(sup.waiting) == 1
    assert sup.cancel_waiting("usb-CAM1")
    release.set()
    idle = threading.Event()

    def check_idle() -> None:
        if not sup.busy():
            idle.set()

    deadline = time.monotonic() + 5
    while not idle.is_set() and time.monotonic() < deadline:
        sup.pump()
        check_idle()
        time.sleep(0.01)
    assert idle.is_set() and ran == []


def test_a_camera_waiting_for_its_own_worker_does_not_hold_up_others() -> None:
    sup = Supervisor(max_parallel=2)
    release = threading.Event()
    other_done = threading.Event()
    sup.submit(Job("usb-CAM1", lambda: release.wait(5)))
    sup.submit(Job("usb-CAM1", lambda: None))  # waits for CAM1's first worker
    sup.submit(Job("usb-CAM2", other_done.set))  # starts at once: there is room
    _settle(sup, other_done)
    release.set()
