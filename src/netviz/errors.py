"""User-facing errors: one line that names the bad value and says what to do.

The rule, everywhere in netviz: whatever a user can cause (a config value, a file, a folder, a class name, the
environment) raises :class:`NetvizError`, checked where it enters: each section's ``read_settings``, the config
loader, the data and weights lookups. The methods (pure tensor functions, :mod:`netviz.methods`) and other
internal APIs raise ``ValueError`` / ``TypeError`` for arguments no checked setting can produce: that is a bug of
their caller and deserves its traceback.
"""


class NetvizError(Exception):
    """An error caused by the user's input or environment (config, files, network).

    The command line prints ``netviz: error: <message>`` and exits with status 2, without a traceback.
    """
