"""Files a checkpoint folder may or may not have (tokenizer_config.json, generation_config.json,
added_tokens.json, a chat template, merges.txt).

Absent is fine: the conversion goes on without what the file would have said. But something
else under the name (a folder, a FIFO, a device, a link to nothing or to itself) is not absence:
taken as absent, a tokenizer_config.json that was a folder converted without its chat template
and special-token settings, saying nothing, and the model could then not chat.
"""

from __future__ import annotations

import os
from pathlib import Path

from llamadesk.app.core.errors import BadInputError


def optional_file(path: Path) -> bool:
    """Whether the optional file `path` is there (a regular file, or a link to one); False if
    nothing has its name; BadInputError if something else has it."""
    if path.is_file():
        return True
    if not os.path.lexists(path):
        return False
    raise BadInputError(
        f"{path} is not a regular file (a folder, FIFO, device or broken link); put the file there or remove it"
    )
