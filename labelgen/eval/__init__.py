"""The evaluation kit: how good are the labels? Not part of the labelling chain.

- :mod:`~labelgen.eval.lfw_parts`: LFW Part Labels on disk (hand-labelled faces, official splits).
- :mod:`~labelgen.eval.occluders`: occluder generators, in families (training ones and held-out ones).
- :mod:`~labelgen.eval.synth`: occluders pasted onto LFW Part Labels faces, with exact labels
  (``labelgen synth``; also ``train``'s occluded training data).
- :mod:`~labelgen.eval.quality`: the chain's labels scored against those exact labels (``labelgen eval-labels``).
- :mod:`~labelgen.eval.coverage`: how well the projected face region covers LFW's faces.
- :mod:`~labelgen.eval.cli`: the kit's ``labelgen`` commands.

The production modules (chain, stages, sources, store, run) never import this package
at module level; they reach it only where a user asks for it (the embedded sample's
pasted occluders, the commands above).
"""
