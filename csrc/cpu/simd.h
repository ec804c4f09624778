// Compiler attributes shared by the CPU back end's vector loops (vec_kernels.cpp, loss_vec.cpp).
//
// The loops are written with GCC vector extensions and built once per ISA by target_clones
// (GCC on x86-64 Linux): AVX-512, AVX2 and a baseline, picked when the library loads. The lane
// arithmetic is the same in every clone, so which one runs changes speed, not results. One
// clone list for both files keeps their ISA choice in step.
#pragma once

// The vector types only live inside always-inlined helpers, never at a call boundary, so
// GCC's note about their calling convention is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define GK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
// Keeps a*r + b*f as two rounded products and a rounded sum in the clones whose ISA has FMA,
// matching the reference's separate multiply and add kernels.
#define GK_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define GK_CLONES
#define GK_NO_CONTRACT
#endif

#define GK_INLINE inline __attribute__((always_inline))
