// Bias add + GELU in one pass: y = gelu(x + b), with b broadcast along the last dimension.
//
// `x` is C-contiguous with n elements, `b` holds the last dimension's d values, so element
// i uses b[i % d]. `approximate` = 0 is the exact (erf) GELU, 1 the tanh approximation;
// both match spiraltorch_nb's composite `gelu` (and PyTorch's) formula for formula.
// The backward kernel returns dh = g * gelu'(x + b); the bias gradient is dh summed over
// the leading dimensions, left to a reduction on the Python side.
#include "common.cuh"

template <typename T> __device__ __forceinline__ T gelu_value(T h, int approximate) {
    if (approximate) {
        const T k = T(0.7978845608028654);  // sqrt(2 / pi)
        const T inner = k * (h + T(0.044715) * h * h * h);
        return T(0.5) * h * (T(1) + st_tanh(inner));
    }
    return T(0.5) * h * (T(1) + st_erf(h * T(0.7071067811865476)));  // 1 / sqrt(2)
}

template <typename T> __device__ __forceinline__ T gelu_grad(T h, int approximate) {
    if (approximate) {
        const T k = T(0.7978845608028654);
        const T t = st_tanh(k * (h + T(0.044715) * h * h * h));
        const T d_inner = k * (T(1) + T(0.134145) * h * h);  // 0.134145 = 3 * 0.044715
        return T(0.5) * (T(1) + t) + T(0.5) * h * (T(1) - t * t) * d_inner;
    }
    const T cdf = T(0.5) * (T(1) + st_erf(h * T(0.7071067811865476)));
    const T pdf = st_exp(T(-0.5) * h * h) * T(0.3989422804014327);  // 1 / sqrt(2 pi)
    return cdf + h * pdf;
}

template <typename T>
__device__ void bias_gelu_forward_elems(const T* __restrict__ x, const T* __restrict__ b, T* __restrict__ y,
                                        long long n, long long d, int approximate) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        y[i] = gelu_value(x[i] + b[i % d], approximate);
    }
}

template <typename T>
__device__ void bias_gelu_backward_elems(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ b,
                                         T* __restrict__ dh, long long n, long long d, int approximate) {
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        dh[i] = g[i] * gelu_grad(x[i] + b[i % d], approximate);
    }
}

extern "C" __global__ void bias_gelu_forward_f32(const float* x, const float* b, float* y, long long n,
                                                 long long d, int approximate) {
    bias_gelu_forward_elems<float>(x, b, y, n, d, approximate);
}
extern "C" __global__ void bias_gelu_forward_f64(const double* x, const double* b, double* y, long long n,
                                                 long long d, int approximate) {
    bias_gelu_forward_elems<double>(x, b, y, n, d, approximate);
}
extern "C" __global__ void bias_gelu_backward_f32(const float* g, const float* x, const float* b, float* dh,
                                                  long long n, long long d, int approximate) {
    bias_gelu_backward_elems<float>(g, x, b, dh, n, d, approximate);
}
extern "C" __global__ void bias_gelu_backward_f64(const double* g, const double* x, const double* b, double* dh,
                                                  long long n, long long d, int approximate) {
    bias_gelu_backward_elems<double>(g, x, b, dh, n, d, approximate);
}
