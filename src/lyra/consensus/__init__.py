"""Consensus: a panel of models votes; weighted aggregation rules turn the votes into one decision.

`panel` runs the members, `aggregation` holds the rules, `decision` the schema a vote must follow.
"""
