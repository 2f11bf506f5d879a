"""Probe a personabid server from outside, as an exchange and an attacker would.

Run: .venv/bin/python -m personabid.bench.probe [--quick] [--json FILE] [--probes undecodable,extreme,...]
(`make probe` runs it with --quick on the demo world.)

Every probe starts its own `python -m personabid serve` on free 127.0.0.1 ports (traffic goes nowhere
else), captures the server's whole log to a file, and is bounded in count and time. Probes:

  undecodable  request bodies that are not BidRequests, sent as raw bytes to Bidder/Bid
  extreme      well-formed BidRequests with extreme values (floors, weights, sizes, strings...)
  streams      concurrent BidStream calls, some cancelled by the client mid-way
  sigterm      SIGTERM under a steady unary load: calls in flight must finish
  redis        a Redis outage (stopped, restarted, frozen) under load; needs redis-server on PATH

The report is a table per probe, then the defects found; --json FILE writes the same as data. Requests
that exposed a defect are saved under --out-dir (JSON, replayable with `personabid call FILE --addr`;
raw bodies as .bin).

One module per probe (undecodable, extreme, streams, sigterm, redis_outage); the server under test and
what the probes share around it in server.py and load.py; results.py and report.py for the report;
cli.py for the command line.
"""
