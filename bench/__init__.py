"""Benchmarks (not tests): each runs its peer or the machine's limit in the same run and prints, as its
last line, one JSON object with name, value, unit, peer, peer_value, ratio (higher is better) and target."""
