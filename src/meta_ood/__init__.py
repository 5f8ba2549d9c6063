"""meta-ood: entropy maximization and meta classification for OoD detection in semantic segmentation."""

__version__ = "0.1.0"
