"""synthloc: synthetic data for text localisation in natural images.

A reimplementation of Gupta, Vedaldi & Zisserman, "Synthetic Data for Text Localisation in
Natural Images" (CVPR 2016): the SynthText engine and the FCRN detector.
"""

__version__ = "0.1.0"
