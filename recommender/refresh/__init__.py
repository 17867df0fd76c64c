"""The all-or-nothing refresh: the next generation is built beside the live one, audited, and switched live in
one transaction (``pipeline.run``, ``generations``), with the simulated cohort it trains on (``cohort``) and
the checks that refuse it (``audit``)."""
