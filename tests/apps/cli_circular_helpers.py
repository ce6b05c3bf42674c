from cli_circular import app  # circular: cli_circular is only partially initialised


def helper() -> object:
    return app
