"""A job that does nothing: what one RQ job costs a `smshooks worker` before any work is done."""


def noop() -> None:
    pass
