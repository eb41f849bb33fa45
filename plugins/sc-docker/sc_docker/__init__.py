"""sc-docker: the ``docker`` sandbox for sc (``sc verify tasks.jsonl --sandbox docker``).

Registered through the ``sc`` entry point ``docker = "sc_docker"``. The docker SDK is imported
only when the sandbox is used, so loading the plugin costs every other ``sc`` command nothing.
"""

from sc_core import hookimpl

from .sandbox import DockerSandbox, DockerSettings, DockerWorker, container_config

__all__ = ["DockerSandbox", "DockerSettings", "DockerWorker", "container_config"]


@hookimpl
def register_sandboxes(register):
    register("docker", DockerSandbox)
