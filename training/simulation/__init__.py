"""`personabid simulate`: a day of a market, on a running server.

Demo-world users arrive on the server's compressed clock with a daily and hourly pattern (traffic.py);
the other bidders of the market set a clearing price per slot size and country (market.py); what happens
after a win (the impression renders, the user clicks, buys, buys again) is drawn from the world's ground
truth (outcomes.py); everything an exchange and an advertiser's site would send goes back through the
server's own notice paths, over HTTP or gRPC (doors.py), in the order of the server's clock (driver.py).
"""
