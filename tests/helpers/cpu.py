"""Another CPU, as far as this one can pretend: environment settings for a child process.

Results that may differ between machines are checked in a child process with these settings:
torch's own kernels without AVX2 (its default scalar path), MKL limited to SSE4.2, numpy's baseline
loops, and numba code for a generic x86-64 without FMA. (torch's float32 ``randn`` gave other bytes
under the first of these, which is how a seeded style once depended on the CPU.)
"""

OTHER_CPU = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "NUMBA_CPU_NAME": "generic",
}
