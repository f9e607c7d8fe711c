"""Routing: which model and key answer a request, and the attempt loop that gets the answer.

`policy` turns a task or tier into ordered candidates, `router` runs the attempts (retry, next key,
next model) behind guards, `keys` is the key pool, `limits` the token buckets, `retry` the backoff
and the circuit breaker, `cache` the response cache with single-flight.
"""
