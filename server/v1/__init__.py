"""Generated gRPC stubs for personabid.v1 (`make proto`; never edited by hand)."""
