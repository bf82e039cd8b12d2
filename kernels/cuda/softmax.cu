// Softmax, log-softmax and cross-entropy over the last, contiguous dimension.
//
// Layout: `x` is a C-contiguous (rows, cols) matrix. One block owns one row at a time
// (grid-stride over rows), its threads stride over the columns, and the row statistics
// (maximum, sum of exponentials) come from block reductions. Rows are read two or three
// times; for the row lengths of classifiers and attention they stay in L1/L2.
//
// Entry points are `extern "C"` wrappers named `<kernel>_f32` / `<kernel>_f64` around one
// template, so CuPy finds them by plain names.
#include "common.cuh"

// ---- softmax / log-softmax forward ---------------------------------------------------------
template <typename T, bool LOG>
__device__ void softmax_forward_rows(const T* __restrict__ x, T* __restrict__ y, long long rows, int cols) {
    __shared__ T scratch[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * cols;
        T* yr = y + row * cols;
        T m = st_neg_inf<T>();
        for (int j = threadIdx.x; j < cols; j += blockDim.x) m = st_max(m, xr[j]);
        m = st_block_max(m, scratch);
        T s = T(0);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) s += st_exp(xr[j] - m);
        s = st_block_sum(s, scratch);
        if (LOG) {
            const T lse = m + st_log(s);
            for (int j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - lse;
        } else {
            const T inv = T(1) / s;
            for (int j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = st_exp(xr[j] - m) * inv;
        }
    }
}

extern "C" __global__ void softmax_forward_f32(const float* x, float* y, long long rows, int cols) {
    softmax_forward_rows<float, false>(x, y, rows, cols);
}
extern "C" __global__ void softmax_forward_f64(const double* x, double* y, long long rows, int cols) {
    softmax_forward_rows<double, false>(x, y, rows, cols);
}
extern "C" __global__ void log_softmax_forward_f32(const float* x, float* y, long long rows, int cols) {
    softmax_forward_rows<float, true>(x, y, rows, cols);
}
extern "C" __global__ void log_softmax_forward_f64(const double* x, double* y, long long rows, int cols) {
    softmax_forward_rows<double, true>(x, y, rows, cols);
}

// ---- softmax / log-softmax backward --------------------------------------------------------
// softmax:     dx = y * (g - sum(g * y))
// log-softmax: dx = g - exp(y) * sum(g)
template <typename T, bool LOG>
__device__ void softmax_backward_rows(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ dx,
                                      long long rows, int cols) {
    __shared__ T scratch[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* gr = g + row * cols;
        const T* yr = y + row * cols;
        T* dr = dx + row * cols;
        T s = T(0);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) s += LOG ? gr[j] : gr[j] * yr[j];
        s = st_block_sum(s, scratch);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            dr[j] = LOG ? gr[j] - st_exp(yr[j]) * s : yr[j] * (gr[j] - s);
        }
    }
}

extern "C" __global__ void softmax_backward_f32(const float* g, const float* y, float* dx, long long rows, int cols) {
    softmax_backward_rows<float, false>(g, y, dx, rows, cols);
}
extern "C" __global__ void softmax_backward_f64(const double* g, const double* y, double* dx, long long rows, int cols) {
    softmax_backward_rows<double, false>(g, y, dx, rows, cols);
}
extern "C" __global__ void log_softmax_backward_f32(const float* g, const float* y, float* dx, long long rows, int cols) {
    softmax_backward_rows<float, true>(g, y, dx, rows, cols);
}
extern "C" __global__ void log_softmax_backward_f64(const double* g, const double* y, double* dx, long long rows, int cols) {
    softmax_backward_rows<double, true>(g, y, dx, rows, cols);
}

// ---- cross-entropy ------------------------------------------------------------------------
// Per row i with target t and label smoothing e over C classes:
//   loss_i = (1 - e) * (lse_i - x_it) + e * (lse_i - mean_j x_ij)
// 0 where t == ignore_index; NaN where t is outside [0, C) (an invalid class index must not
// read out of bounds, and NaN makes the mistake visible in the loss).
template <typename T>
__device__ void cross_entropy_forward_rows(const T* __restrict__ x, const long long* __restrict__ target,
                                           T* __restrict__ loss, long long rows, int cols,
                                           long long ignore_index, T smoothing) {
    __shared__ T scratch[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * cols;
        T m = st_neg_inf<T>();
        for (int j = threadIdx.x; j < cols; j += blockDim.x) m = st_max(m, xr[j]);
        m = st_block_max(m, scratch);
        T s = T(0);
        T sx = T(0);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            s += st_exp(xr[j] - m);
            sx += xr[j];
        }
        s = st_block_sum(s, scratch);
        sx = st_block_sum(sx, scratch);
        if (threadIdx.x == 0) {
            const long long t = target[row];
            T out;
            if (t == ignore_index) {
                out = T(0);
            } else if (t < 0 || t >= cols) {
                out = st_nan<T>();
            } else {
                const T lse = m + st_log(s);
                out = (T(1) - smoothing) * (lse - xr[t]) + smoothing * (lse - sx / T(cols));
            }
            loss[row] = out;
        }
    }
}

// d loss_i / d x_ij = g_i * (softmax_ij - (1 - e) [j == t] - e / C); 0 for ignored rows.
template <typename T>
__device__ void cross_entropy_backward_rows(const T* __restrict__ g, const T* __restrict__ x,
                                            const long long* __restrict__ target, T* __restrict__ dx,
                                            long long rows, int cols, long long ignore_index, T smoothing) {
    __shared__ T scratch[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * cols;
        T* dr = dx + row * cols;
        const long long t = target[row];
        if (t == ignore_index) {  // uniform across the block: no barrier is skipped by some threads only
            for (int j = threadIdx.x; j < cols; j += blockDim.x) dr[j] = T(0);
            continue;
        }
        T m = st_neg_inf<T>();
        for (int j = threadIdx.x; j < cols; j += blockDim.x) m = st_max(m, xr[j]);
        m = st_block_max(m, scratch);
        T s = T(0);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) s += st_exp(xr[j] - m);
        s = st_block_sum(s, scratch);
        const T gi = g[row];
        const bool valid = t >= 0 && t < cols;
        const T inv = T(1) / s;
        const T off = smoothing / T(cols);
        const T hit = T(1) - smoothing;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const T p = st_exp(xr[j] - m) * inv;
            dr[j] = valid ? gi * (p - off - (j == t ? hit : T(0))) : st_nan<T>();
        }
    }
}

extern "C" __global__ void cross_entropy_forward_f32(const float* x, const long long* target, float* loss,
                                                     long long rows, int cols, long long ignore_index,
                                                     float smoothing) {
    cross_entropy_forward_rows<float>(x, target, loss, rows, cols, ignore_index, smoothing);
}
extern "C" __global__ void cross_entropy_forward_f64(const double* x, const long long* target, double* loss,
                                                     long long rows, int cols, long long ignore_index,
                                                     double smoothing) {
    cross_entropy_forward_rows<double>(x, target, loss, rows, cols, ignore_index, smoothing);
}
extern "C" __global__ void cross_entropy_backward_f32(const float* g, const float* x, const long long* target,
                                                      float* dx, long long rows, int cols,
                                                      long long ignore_index, float smoothing) {
    cross_entropy_backward_rows<float>(g, x, target, dx, rows, cols, ignore_index, smoothing);
}
extern "C" __global__ void cross_entropy_backward_f64(const double* g, const double* x, const long long* target,
                                                      double* dx, long long rows, int cols,
                                                      long long ignore_index, double smoothing) {
    cross_entropy_backward_rows<double>(g, x, target, dx, rows, cols, ignore_index, smoothing);
}
