"""Feature visualisation (Keras): first-layer filter grids and activation maximisation (`filters`)."""
