"""The entry point of mltrain's helper on an SSH host (its zip's ``__main__``). The helper runs without
``site`` (``python -S``: it is standard library only, and a host's ``.pth`` files can take longer to
load than the helper itself), and a connection's helper (``serve probe``) answers the probe before it
imports its other commands (:mod:`~mltrain.remote.ssh_agent`): the driver waits for that answer.
"""

from __future__ import annotations

import os


def main(argv: list[str]) -> None:
    """``AGENT WORKDIR COMMAND [ARGS]``."""
    if argv[1:] == ["serve", "probe"]:
        from mltrain.remote.ssh_probe import cmd_probe

        cmd_probe(os.path.expanduser(argv[0]))
        argv = argv[:2]
    from mltrain.remote.ssh_agent import main as run

    run(argv)
