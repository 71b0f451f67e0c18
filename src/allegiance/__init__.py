"""Allegiance: an open-source, headless B2B loyalty and partner-incentive engine."""

__version__ = "0.1.0"
