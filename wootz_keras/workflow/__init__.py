"""The Keras side of exploration and the end-to-end pipeline as public stages.

`runner.explore` assembles, fine-tunes and measures candidates under an
objective (the search engine in `wootz_keras.search` decides the order and
when to stop); `pipeline` chains the stages of a whole run on real data.
"""
