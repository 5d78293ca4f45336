"""Worker hook for tests: records the value of a variable the test set after the fork server started."""

from __future__ import annotations

import os
from pathlib import Path


def record() -> None:
    Path(os.environ["EXHUNT_TEST_ENV_FILE"]).write_text(os.environ.get("EXHUNT_TEST_MARK", "<unset>"),
                                                        encoding="utf-8")
