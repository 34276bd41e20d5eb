"""Every public node documents each of its arguments and shows an example."""

import inspect

import pytest

import gunpowder as gp
import gunpowder.torch as gp_torch
from gunpowder.nodes import BatchProvider
from gunpowder.pipeline import Node


def public_nodes():
    for module in (gp, gp_torch):
        for name in sorted(dir(module)):
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, (Node, BatchProvider)):
                yield name, obj


@pytest.mark.parametrize("name,cls", list(public_nodes()))
def test_node_docstring_has_arguments_and_example(name, cls):
    doc = inspect.getdoc(cls) or ""
    params = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")
    ]
    assert "Example" in doc, f"{name}: docstring has no Example"
    missing = [p for p in params if p not in doc]
    assert not missing, f"{name}: docstring does not mention {missing}"
