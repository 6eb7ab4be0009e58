"""Data preparation at dataset scale: manifests, mouth-ROI cropping, noise, the synthetic corpus."""
