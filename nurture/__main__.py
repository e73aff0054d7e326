"""`python -m nurture` and the `nurture` command (see [project.scripts])."""

import gc


def run() -> None:
    # Importing the commands makes many long-lived objects (SQLAlchemy, pydantic, click):
    # with the collector off meanwhile, start-up takes about a tenth less. They are then
    # frozen, so later collections do not walk them again.
    gc.disable()
    try:
        from nurture.cli.main import main  # deferred: the whole CLI, imported with the collector off
    finally:
        gc.enable()
    gc.freeze()
    main()


if __name__ == "__main__":
    run()
