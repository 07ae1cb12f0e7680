"""User-facing errors: one line that names the bad file or config key and the fix."""


class ShapelabError(Exception):
    """A problem with the user's data or config.

    The message is a single line: what is wrong, where (file path or config key), and how to fix it.
    Entry points (train.py, evaluate.py, preprocess.py) print it as ``error: <message>`` and exit 2
    instead of showing a traceback.
    """
