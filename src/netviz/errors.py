"""User-facing errors: one line that names the bad value and says what to do."""


class NetvizError(Exception):
    """An error caused by the user's input or environment (config, files, network).

    The command line prints ``netviz: error: <message>`` and exits with status 2, without a traceback.
    """
