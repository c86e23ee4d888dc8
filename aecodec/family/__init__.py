"""The autoencoder family (issue 5): classic autoencoders on one shared backbone, each a codec baseline.

`registry.FAMILY` names the members, `trainer` trains any of them, `codec` benchmarks them as codecs.
"""
