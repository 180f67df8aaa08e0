// RR_HD marks functions written once for the CPU core and the CUDA kernels (host + device).
#pragma once

#if defined(__CUDACC__)
#define RR_HD __host__ __device__
#else
#define RR_HD
#endif
