"""The end-to-end benchmark (`personabid bench`): the bidder under load beside a trivial echo service.

Python gRPC sets a floor of its own on latency and throughput; the echo service (echo.py) measures it in
the same run, with the same messages and the same server setup, so that the bidder's figures are read as
ratios to it on a noisy machine. The HTTP echo (http_echo.py) does the same for the OpenRTB JSON door.
The servers run in their own processes (services.py), the load in others (clients.py, load.py,
http_load.py); latencies go into HDR histograms (report.py); runner.py plans and runs the suite.
"""
