"""Fixture (BR-23): the module raises AttributeError while importing."""


def configure() -> None:
    raise AttributeError("boom")


configure()
app = None
