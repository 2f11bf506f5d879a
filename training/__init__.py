"""Offline CTR training: reads logs and writes the model artifact that personabid.ctr reads."""
