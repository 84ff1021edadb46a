"""The fast exponential-family EM kernel: the E-step and the M-step's moments as two matrix
products against features T(X), chunked (streaming), restart-batched and shardable
(``kernel``), its data layout (``layout``), its float64 exp/log (``elementwise``) and its
engine for em_reference.loop (``engine``). Proven equal to em_reference.textbook."""
