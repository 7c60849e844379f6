"""Compiled workloads W1-W5 (issue 7): the same PyTorch-style programs run by NumPy by hand,
torch eager, torch.compile, compgrad eager, compgrad.compile and compgrad.replay
(``compgrad.compile(fn, mode="reduce-overhead")``, timed only where its step is replayed),
timed against torch eager.

Run from the repository root::

    python -m benchmarks.compiled [--rounds 11] [--quick] [--workloads W1,W3] [--profile] ...

Every contestant runs in its own long-lived worker process (``worker``, driven through
``pool``), which imports only its own library and keeps its library's thread policy (2
threads everywhere; see ``policy``): torch's spinning OpenMP threads and compgrad's Numba
OpenMP pool and OpenBLAS no longer share a process and starve each other. ``runner`` sets
each case up in every worker (results checked against torch eager's), warms it up, then
runs interleaved rounds, one worker timing at a time with the order rotating, and takes
ratios to torch eager per round. Fresh processes measure the first W1 step with an empty
and a warm compile cache (``coldstart``; compgrad.compile and torch.compile) and W3's peak
memory (``memory``; not compgrad.replay); ``report`` writes the Markdown table (with a
"replay ratio" column beside compgrad.compile's target) and the plot.

Modules: ``settings`` (constants, targets), ``programs`` (the workloads and instances),
``by_hand`` (the NumPy contestant), ``policy``, ``worker``, ``pool``, ``runner``,
``coldstart``, ``memory``, ``report``, ``cli``, and ``gpu``: issue 8's GPU suite (W1, W3, W4
at H100 sizes on one CUDA device; ``python -m benchmarks.compiled --device cuda``). This
package's import loads nothing but the standard library, so that a worker can set its
policy before its libraries load.
"""
