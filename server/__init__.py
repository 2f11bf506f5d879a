"""personabid: ad-audience matching and bid decisions at request time."""

__version__ = "0.1.0"
