"""Nodes, one module per family (sources, location, arrays, augment, labels, ...)."""
