"""Pure numpy kernels: the maths of the nodes, knowing nothing of keys or ROIs."""
