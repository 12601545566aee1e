"""Cleaning real-photo segmentations for annotation-invariant style transfer (seed 002, ch. 3). TF-free.

`filters`: the seven rejection rules with per-rule counts; `normalise`: RGBA crops, colour correction, square
padding and car-to-frame ratio matching; `plots`: ratio histograms (Figures 3.10 / 3.14); `stanford_cars`:
the Stanford Cars folder layout and the per-photo pipeline the `stanford_cars_clean` builder runs.
"""
