//! Deterministic sample tables (retail data with every tricky value) for the demo, tests and benchmark.
