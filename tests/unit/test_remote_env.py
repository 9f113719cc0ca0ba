"""Docker's global flags as the environment of the commands we start that are not docker calls."""

from __future__ import annotations

from compose_rollback.argv import docker_environment, split_argv


def test_host_flag_becomes_docker_host_and_clears_the_context() -> None:
    inv = split_argv(["-H", "unix:///tmp/x.sock", "compose", "rollback", "up"], as_plugin=True)
    assert docker_environment(inv.docker) == {"DOCKER_HOST": "unix:///tmp/x.sock",
                                              "DOCKER_CONTEXT": None}


def test_context_flag_becomes_docker_context_and_clears_the_host() -> None:
    inv = split_argv(["-c", "prod", "--config", "/etc/dc", "compose", "rollback", "up"],
                     as_plugin=True)
    assert docker_environment(inv.docker) == {"DOCKER_CONTEXT": "prod", "DOCKER_HOST": None,
                                              "DOCKER_CONFIG": "/etc/dc"}


def test_no_docker_flags_leave_the_environment_alone() -> None:
    inv = split_argv(["compose", "-p", "shop", "rollback", "up"], as_plugin=True)
    assert docker_environment(inv.docker) == {}
    assert docker_environment({"tls": True, "log_level": "debug"}) == {}
