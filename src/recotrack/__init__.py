"""recotrack: self-hosted order tracking and cancellation, wire-compatible with Peerius."""

__version__ = "0.1.0"
