"""Deep declarative nodes: layers defined by optimisation problems, differentiated implicitly."""
