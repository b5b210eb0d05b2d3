"""Fixtures for the agent's tests: agents run in threads of the test process."""

import pytest

from recording.agent import VideoServerAgent


@pytest.fixture
def recorded_site(site, tmp_path):
    """The shared site with each server recording under this test's own directory."""
    for name in ("a", "b", "c"):
        site[name].recordings_path = str(tmp_path / site[name].name)
        site[name].save()
    return site


@pytest.fixture
def agents(settings):
    """Start agents in this process (threads), with short timings; all are stopped after the test."""
    started = []

    def start(name, **options):
        timings = {"heartbeat_interval": 0.25, "sweep_interval": 0.5, "open_timeout": 1.0, "read_timeout": 1.0,
                   "segment_seconds": 2.0}  # fmt: skip
        agent = VideoServerAgent(name, **{**timings, **options})
        agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
