"""Progress bars: a notebook widget where Jupyter can show one, text elsewhere.

`tqdm.auto` picks the widget in a kernel, but warns ("IProgress not found") and falls back
to text when ipywidgets is missing; this picks the text bar in that case without a warning.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["progress_bar"]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()  # type: ignore[attr-defined]
    except Exception:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def progress_bar(*args: Any, **kwargs: Any) -> Any:
    """`tqdm(...)`: the notebook bar in Jupyter with ipywidgets installed, else the text bar.

    >>> bar = progress_bar(total=3, disable=True)
    >>> bar.update(3); bar.close()
    """
    if _in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(*args, **kwargs)
