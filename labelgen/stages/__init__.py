"""The per-image labelling stages: pure functions (and model-holding callables) on numpy arrays.

Order of the chain: decode -> detect -> pose -> contour -> crop -> hull ->
teacher -> residual -> components. No stage reads or writes files.
"""
