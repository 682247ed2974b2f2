"""wootz_keras: fast structured CNN pruning for Keras 3 through composability.

    >>> import wootz_keras as wz
"""

__version__ = "0.1.0"
