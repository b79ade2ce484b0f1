"""Test and demo equipment (not installed on edge nodes).

netns.py      the two-namespace lab (attacker <-veth-> victim)
collateral.py the collateral lab (attacker, client, victim joined by a bridge namespace)
services.py   real services for it (HTTP, UDP request/response, a DNS resolver)
legit.py      legitimate traffic from the client and its success per class
trafgen.py    bounded trafgen floods from the attacker namespace
pacing.py     steady pacing for them (a tbf qdisc on a per-flood macvlan)
rxrate.py     the rate a flood reached the victim at (rx counters per 100 ms)
collateral_flood.py  one flood against the agent in the collateral lab, judged by the
              lab's pass counter (the e2e test's and bench_collateral's runner)
minidns.py    the few DNS wire-format pieces the resolver and the lookups need
demo.py       `make demo`, and the Stack the e2e tests and benchmarks share
agent_harness.py  the real agent loop in-process in a lab's victim namespace (tests, bench)
notify_receivers.py  loopback HTTP receivers standing in for each notification service
notify_channels.py   channel configs that point at them
"""
