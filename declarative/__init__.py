"""Deep declarative nodes: layers defined by optimisation problems, differentiated implicitly.

`node.DeclarativeNode` (objective, solve, constraints) + `function.declarative_output` (the IFT backward);
nodes: robust pooling, sphere / ball projection, least squares, a point on a level set (MeshSDF).
"""
