"""The ``talkfreq`` command. Nothing is parsed at import time: :func:`main` builds and runs the click command.

Every sub-command takes ``-c FILE`` (an OmegaConf YAML checked against the command's dataclass schema) and dotted
``key.sub=value`` overrides anywhere among its arguments; explicit options such as ``--size`` win over both, each
naming the field of the schema it sets (:func:`~talkfreq.cli._common.load_options`). A user-fixable problem ends
the command with one line on stderr and exit status 2.
"""

# the command modules register their commands on ``app`` in this order, the order of ``talkfreq --help``
from talkfreq.cli import data, video, recipes, measure  # noqa: I001
from talkfreq.cli._common import app
from talkfreq.cli._run import main

__all__ = ["app", "main"]
