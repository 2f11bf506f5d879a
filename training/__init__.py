"""Offline CTR training and the model artifact the server scores with."""
