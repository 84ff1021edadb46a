"""Every tuning constant of em_reference, in one place, each with why it has its value.

None of these changes a result beyond rounding: they decide memory layout and which of two
proven-equal code paths runs. The measurements behind them are in benchmarks/README.md and
in the commit history, not here.
"""

# ---------------------------------------------------------------- which EM path runs
# algorithm="auto" runs the textbook path (em_reference.textbook) when the problem is small
# enough that one E-step's (N, K) log joints of every restart are cheap to hold and the fast
# kernel's per-call set-up would not pay: at most this many values N * K * n_init, no
# chunk_size and no devices (restarts are then a vmap of the textbook loop, and restart 0 is
# bitwise the single-restart fit: scikit-learn's "n_init=5 never scores below n_init=1").
# Larger problems, streaming and sharding run the fast kernel (em_reference.fast), which is
# proven equal to the textbook path in the tests.
TEXTBOOK_MAX_VALUES = 2**11

# ---------------------------------------------------------------- the fast kernel's layout
# Rows per chunk are chosen so that a chunk's temporaries (its features T(x) and every
# restart's K log joints, ``row_width`` values per row) hold about this many values (8 MB in
# float64): smaller chunks pay XLA's per-operation overhead more often, larger ones leave the
# cache.
CHUNK_TARGET_VALUES = 2**20
# ...and never fewer rows than this, however wide a row is.
CHUNK_MIN_ROWS = 256
# Chunks are a multiple of this many rows (times the device count), so that every device's
# share of a chunk is vector-aligned.
CHUNK_ROW_MULTIPLE = 8

# The features T(X) of all rows are computed once and kept for the whole fit when they take
# at most this many bytes and no chunk_size was given (building them briefly takes about
# twice this: the slices before they are joined). Above it, or with an explicit chunk_size,
# every E-step rebuilds each chunk's features (memory O(chunk), streaming EM).
FEATURE_CACHE_BYTES = 2**27

# A single restart with cached features of at most this many chunks keeps the chunks as
# separate arrays and unrolls the E-step over them: a scan copies each chunk's slice of the
# cache in every E-step. Compilation grows by about 0.1 s per unrolled chunk, hence the cap.
# Restarts keep the scan (unrolled, their one-product E-step ran slower).
UNROLL_MAX_CHUNKS = 8

# The host copies the (centred) data into the device array in blocks of about this many
# values (32 MB in float64), whole chunks at a time, so that no full host copy of X is made.
HOST_COPY_VALUES = 2**22

# The fast kernel's expanded quadratic x'Lx - 2 mu'Lx + mu'L mu (and its scatter from raw
# moments, Sxx - N mu mu') loses about eps * mu'L mu relative to the true value when a
# component's mean lies mu'L mu of its own variances from the data's centre. It is used while
# that loss is at most eps ** EXPANSION_MAX_LOSS_POWER (float64: mu'L mu <= 6.7e7, a loss of
# 1.5e-8; float32: mu'L mu <= 2,900); beyond it the E-step takes the difference form and the
# moments are taken about each component's current mean (em_reference.fast.kernel). Ordinary
# data (clusters a few of the data's spreads apart, each a tenth of it wide: mu'L mu ~ 1e3)
# stay far below the switch.
EXPANSION_MAX_LOSS_POWER = 0.5

# ---------------------------------------------------------------- stopping and SQUAREM
# Two successive objective changes both smaller than this many times max(|objective|, total
# sample weight) are rounding: the objective is flat to machine precision (float64 sums of N
# terms hold ~1e-16 relative each; 2^-40 leaves room for N ~ 1e6 terms' accumulated error),
# and the Aitken distance is taken as 0 (the gradient certificate decides).
OBJECTIVE_ROUNDING = 2.0**-40

# The certificate floor (em_reference.loop.certificate_and_floor) counts this many spacings
# of every parameter: the M-step's sums round its means by a few spacings, not by half of
# one, and the floor must hold the certificate of a fit at the MLE with room to spare.
CERTIFICATE_FLOOR_ULPS = 16.0

# SQUAREM's adaptive largest step length starts at 1 (the first cycle is two plain EM steps
# plus one) and is multiplied by this when a step at the bound is accepted, divided by it
# when one is rejected (Varadhan & Roland 2008; the SQUAREM package's "mstep" = 4).
SQUAREM_STEP_FACTOR = 4.0
# Halvings of the step length towards 1 before a rejected extrapolation falls back to the
# plain EM point theta_2 (each halving costs an E-step).
SQUAREM_MAX_BACKTRACKS = 3
# The most E-steps one SQUAREM cycle takes (theta_0, theta_1, then every try of theta'),
# which is how far past max_iter a cycle in progress may go (room in the trace).
SQUAREM_MAX_CYCLE = 2 + SQUAREM_MAX_BACKTRACKS + 1

# ---------------------------------------------------------------- long processes
# Past this many memory mappings the estimators clear JAX's compiled-program caches after a
# fit (em_reference.config.release_compiled_code). Each newly compiled data shape adds ~190
# mappings (issue 21: 8,577 after ~40 shapes, 1,694 after jax.clear_caches()); the kernel's
# default limit is 65,530, where the process crashed after ~330 shapes. A third of it leaves
# room for the caller's own mappings and for the fit in progress.
MEMORY_MAPS_BUDGET = 20_000

# ---------------------------------------------------------------- warnings
# The fit's warnings point at the user's call: warn in MixtureEM._fit <- one_blas_thread's
# wrapper (contextlib) <- fit / fit_predict <- the caller.
WARN_AT_CALLER = 4
