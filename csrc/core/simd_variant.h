// One source, compiled once per SIMD variant. CMake builds the synthesis sources
// (synthesis_{cpu,pyramid,patchmatch,vote}.cpp) several times with RR_SIMD_VARIANT set to one of
// the values below; each copy lives in its own namespace (RR_SIMD_NS) and, between RR_SIMD_BEGIN
// and RR_SIMD_END, is compiled for its instruction set. core/simd.cpp picks the copy a call runs
// (by the CPU, or as forced: RERENDER_SIMD).
//
// Why target regions and not per-file -mavx2 flags: a file compiled with -mavx2 may emit AVX2
// code into inline functions shared with other files (std::vector's members, std::sort), and the
// linker keeps one copy of each, possibly the AVX2 one, for everybody: an illegal instruction on
// older CPUs. Code in a region gets the target; templates and inline functions defined before it
// (the standard library, core/*.h included first) stay baseline. So a variant file includes
// every header it needs first, then opens its region.
//
// Every variant computes the same bits: the compiler never fuses a multiply-add
// (-ffp-contract=off), and the kernels that differ (synthesis_kernels.h) follow one written
// order of operations.
#pragma once

#define RR_SIMD_BASELINE 0  // x86-64 SSE2 (any x86-64 CPU), or the plain C++ of other architectures
#define RR_SIMD_AVX2 2      // x86-64-v3: AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE (Haswell, Excavator and later)
#define RR_SIMD_AVX512 3    // x86-64-v4: the above and AVX-512 F/BW/CD/DQ/VL (Skylake-X, Zen 4 and later)

#if !defined(RR_SIMD_VARIANT)
#error "RR_SIMD_VARIANT must be set (see CMakeLists.txt)"
#endif

// (A test may compile a variant into a namespace of its own: it defines RR_SIMD_NS first.)
#if RR_SIMD_VARIANT == RR_SIMD_AVX512
// (Feature lists, not "arch=x86-64-v3": they add to the file's own options, which may already be
// -march=native, where an arch would replace them and clash with the intrinsics' definitions.)
#define RR_SIMD_DEFAULT_NS avx512
#define RR_SIMD_TARGET "avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt,movbe,avx512f,avx512bw,avx512cd,avx512dq,avx512vl"
#elif RR_SIMD_VARIANT == RR_SIMD_AVX2
#define RR_SIMD_DEFAULT_NS avx2
#define RR_SIMD_TARGET "avx2,fma,f16c,bmi,bmi2,lzcnt,popcnt,movbe"
#elif RR_SIMD_VARIANT == RR_SIMD_BASELINE
#define RR_SIMD_DEFAULT_NS baseline
#else
#error "unknown RR_SIMD_VARIANT"
#endif
#if !defined(RR_SIMD_NS)
#define RR_SIMD_NS RR_SIMD_DEFAULT_NS
#endif

// RR_SIMD_EMULATED: a test compiles the AVX-512 kernels against an emulation of the intrinsics
// (SIMDe, see tests/cpp/); no target region then.
#if defined(RR_SIMD_TARGET) && !defined(RR_SIMD_EMULATED)
#define RR_SIMD_STR(x) #x
#define RR_SIMD_PRAGMA_TARGET(t) _Pragma(RR_SIMD_STR(GCC target(t)))
#define RR_SIMD_BEGIN _Pragma("GCC push_options") RR_SIMD_PRAGMA_TARGET(RR_SIMD_TARGET)
#define RR_SIMD_END _Pragma("GCC pop_options")
#else
#define RR_SIMD_BEGIN
#define RR_SIMD_END
#endif
