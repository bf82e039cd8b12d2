// Helpers shared by the spiraltorch_nb CUDA kernels: typed math, special values and
// block-wide reductions.
//
// The Python side (spiraltorch_nb/backends/cuda/fused.py) pastes this file over each
// kernel file's include of it before handing the source to cupy.RawModule, so CuPy's
// compile cache hashes the full program; `nvcc --ptx` finds it as a normal include.
// Nothing here needs a host header: NVRTC compiles it as is.
#pragma once

#define ST_FULL_MASK 0xffffffffu

// ---- typed math (explicit overloads: no reliance on <cmath> being visible) ----------
__device__ __forceinline__ float st_exp(float x) { return expf(x); }
__device__ __forceinline__ double st_exp(double x) { return exp(x); }
__device__ __forceinline__ float st_log(float x) { return logf(x); }
__device__ __forceinline__ double st_log(double x) { return log(x); }
__device__ __forceinline__ float st_erf(float x) { return erff(x); }
__device__ __forceinline__ double st_erf(double x) { return erf(x); }
__device__ __forceinline__ float st_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double st_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float st_rsqrt(float x) { return rsqrtf(x); }
__device__ __forceinline__ double st_rsqrt(double x) { return rsqrt(x); }
__device__ __forceinline__ float st_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double st_max(double a, double b) { return fmax(a, b); }

// ---- special values ----------------------------------------------------------------------
template <typename T> __device__ __forceinline__ T st_neg_inf();
template <> __device__ __forceinline__ float st_neg_inf<float>() {
    return __int_as_float((int)0xff800000u);
}
template <> __device__ __forceinline__ double st_neg_inf<double>() {
    return __longlong_as_double((long long)0xfff0000000000000ull);
}

template <typename T> __device__ __forceinline__ T st_nan();
template <> __device__ __forceinline__ float st_nan<float>() {
    return __int_as_float(0x7fc00000);
}
template <> __device__ __forceinline__ double st_nan<double>() {
    return __longlong_as_double(0x7ff8000000000000ll);
}

// ---- reductions ----------------------------------------------------------------------------
template <typename T> __device__ __forceinline__ T st_warp_sum(T v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(ST_FULL_MASK, v, offset);
    return v;
}

template <typename T> __device__ __forceinline__ T st_warp_max(T v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = st_max(v, __shfl_xor_sync(ST_FULL_MASK, v, offset));
    return v;
}

// Block-wide sum; every thread receives the total. `scratch` is >= 32 elements of shared
// memory. blockDim.x must be a multiple of 32 so that every warp is full (the shuffles use
// the full mask). Every thread of the block must call it (it contains barriers).
template <typename T> __device__ T st_block_sum(T v, T* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    v = st_warp_sum(v);
    __syncthreads();  // readers of the previous reduction are done with scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    // each warp folds the partials itself, so no broadcast (and no third barrier) is needed
    v = lane < nwarps ? scratch[lane] : T(0);
    return st_warp_sum(v);
}

// Block-wide maximum, as st_block_sum.
template <typename T> __device__ T st_block_max(T v, T* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    v = st_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : st_neg_inf<T>();
    return st_warp_max(v);
}
