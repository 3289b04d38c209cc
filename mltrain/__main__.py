"""``python -m mltrain [overrides]``: compose the Hydra config and run the job it describes."""

import os
import sys

MULTIRUN = ("-m", "--multirun")


def _connects_early(argv: list[str]) -> bool:
    """Whether ``argv`` runs a job in a forked composing child (:mod:`mltrain.config.prefork`) or a sweep
    (no other option, no ``detach=``): its SSH hosts of last time are connected while it starts."""
    from mltrain.config import prefork

    if any(a.lstrip("+").startswith("detach=") for a in argv):
        return False
    plain = [a for a in argv if a not in MULTIRUN]
    return not any(a.startswith("-") for a in plain) if len(plain) < len(argv) else prefork.applicable(argv)


def _main() -> int:
    argv = sys.argv[1:]
    from mltrain.config import prefork

    if _connects_early(argv):
        from mltrain.compute.ssh import prespawn

        prespawn.start(argv)  # first of all: the ssh clients of the hosts this command line ran on last time
        if any(a in MULTIRUN for a in argv):  # a sweep, composed in this process: its hosts connect meanwhile
            from mltrain.runs import preconnect

            preconnect.start(argv)
            prespawn.discard()
    from mltrain.plugin import project_importable

    project_importable()  # already so with `python -m`; also with `python -P` or PYTHONSAFEPATH
    try:
        if any(a.lstrip("+").startswith("detach=") for a in argv):  # detach=true: record, start, return
            from mltrain.config import detach

            try:
                detached, argv = detach.split_detach(argv)
            except detach.ConfigError as exc:
                from mltrain.text import print_error

                print_error(exc)
                return exc.exit_code
            if detached:
                return detach.main(argv)
            sys.argv[1:] = argv
        if prefork.applicable(argv):
            return prefork.main(argv)
        from mltrain.config.app import main

        return main()
    except KeyboardInterrupt:
        sys.stderr.write("mltrain: interrupted\n")
        return 130


if __name__ == "__main__":
    code = _main()
    # Everything is stored and every stream flushed by now: skip the interpreter's teardown of
    # Hydra and SQLAlchemy (about 0.1 s) — the run is over.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
