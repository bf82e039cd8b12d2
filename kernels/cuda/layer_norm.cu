// Layer normalization over the last, contiguous dimension of a (rows, cols) matrix.
//
//   mean = sum(x) / cols,  var = sum((x - mean)^2) / cols  (two passes: no cancellation),
//   rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * w + b
//
// Forward and input-gradient kernels own one row per block (grid-stride over rows). The
// backward recomputes mean and rstd instead of saving them from the forward: one extra
// read of the row buys a single-output operator. It writes them out for the weight/bias
// gradient kernel, which reduces down the rows column by column in row chunks; the
// chunk partials are summed on the Python side (deterministic, unlike atomics).
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void row_moments(const T* __restrict__ xr, int cols, T eps, T* scratch, T& mean,
                                            T& rstd) {
    T s = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
    mean = st_block_sum(s, scratch) / T(cols);
    T q = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const T c = xr[j] - mean;
        q += c * c;
    }
    rstd = st_rsqrt(st_block_sum(q, scratch) / T(cols) + eps);
}

template <typename T>
__device__ void layer_norm_forward_rows(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                        T* __restrict__ y, long long rows, int cols, T eps, int has_w, int has_b) {
    __shared__ T scratch[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * cols;
        T* yr = y + row * cols;
        T mean, rstd;
        row_moments(xr, cols, eps, scratch, mean, rstd);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            T v = (xr[j] - mean) * rstd;
            if (has_w) v *= w[j];
            if (has_b) v += b[j];
            yr[j] = v;
        }
    }
}

// dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)),  gw = g * w,  xhat = (x - mean) * rstd
template <typename T>
__device__ void layer_norm_backward_rows(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w,
                                         T* __restrict__ dx, T* __restrict__ mean_out, T* __restrict__ rstd_out,
                                         long long rows, int cols, T eps, int has_w) {
    __shared__ T scratch[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * cols;
        const T* gr = g + row * cols;
        T* dr = dx + row * cols;
        T mean, rstd;
        row_moments(xr, cols, eps, scratch, mean, rstd);
        T a = T(0);
        T bsum = T(0);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const T gw = has_w ? gr[j] * w[j] : gr[j];
            a += gw;
            bsum += gw * (xr[j] - mean) * rstd;
        }
        a = st_block_sum(a, scratch) / T(cols);
        bsum = st_block_sum(bsum, scratch) / T(cols);
        for (int j = threadIdx.x; j < cols; j += blockDim.x) {
            const T gw = has_w ? gr[j] * w[j] : gr[j];
            const T xhat = (xr[j] - mean) * rstd;
            dr[j] = rstd * (gw - a - xhat * bsum);
        }
        if (threadIdx.x == 0) {
            mean_out[row] = mean;
            rstd_out[row] = rstd;
        }
    }
}

// Partial weight and bias gradients: thread = column, blockIdx.y = chunk of rows.
//   dw_part[chunk, j] = sum_rows g * xhat,  db_part[chunk, j] = sum_rows g
template <typename T>
__device__ void layer_norm_param_grads_cols(const T* __restrict__ g, const T* __restrict__ x,
                                            const T* __restrict__ mean, const T* __restrict__ rstd,
                                            T* __restrict__ dw_part, T* __restrict__ db_part, long long rows,
                                            int cols, long long rows_per_chunk) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;  // no barriers below, so an early exit is safe
    const long long r0 = (long long)blockIdx.y * rows_per_chunk;
    const long long r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    T sw = T(0);
    T sb = T(0);
    for (long long r = r0; r < r1; ++r) {
        const long long k = r * cols + j;  // adjacent threads read adjacent columns: coalesced
        const T gv = g[k];
        sw += gv * (x[k] - mean[r]) * rstd[r];
        sb += gv;
    }
    dw_part[(long long)blockIdx.y * cols + j] = sw;
    db_part[(long long)blockIdx.y * cols + j] = sb;
}

extern "C" __global__ void layer_norm_forward_f32(const float* x, const float* w, const float* b, float* y,
                                                  long long rows, int cols, float eps, int has_w, int has_b) {
    layer_norm_forward_rows<float>(x, w, b, y, rows, cols, eps, has_w, has_b);
}
extern "C" __global__ void layer_norm_forward_f64(const double* x, const double* w, const double* b, double* y,
                                                  long long rows, int cols, double eps, int has_w, int has_b) {
    layer_norm_forward_rows<double>(x, w, b, y, rows, cols, eps, has_w, has_b);
}
extern "C" __global__ void layer_norm_backward_f32(const float* g, const float* x, const float* w, float* dx,
                                                   float* mean_out, float* rstd_out, long long rows, int cols,
                                                   float eps, int has_w) {
    layer_norm_backward_rows<float>(g, x, w, dx, mean_out, rstd_out, rows, cols, eps, has_w);
}
extern "C" __global__ void layer_norm_backward_f64(const double* g, const double* x, const double* w, double* dx,
                                                   double* mean_out, double* rstd_out, long long rows, int cols,
                                                   double eps, int has_w) {
    layer_norm_backward_rows<double>(g, x, w, dx, mean_out, rstd_out, rows, cols, eps, has_w);
}
extern "C" __global__ void layer_norm_param_grads_f32(const float* g, const float* x, const float* mean,
                                                      const float* rstd, float* dw_part, float* db_part,
                                                      long long rows, int cols, long long rows_per_chunk) {
    layer_norm_param_grads_cols<float>(g, x, mean, rstd, dw_part, db_part, rows, cols, rows_per_chunk);
}
extern "C" __global__ void layer_norm_param_grads_f64(const double* g, const double* x, const double* mean,
                                                      const double* rstd, double* dw_part, double* db_part,
                                                      long long rows, int cols, long long rows_per_chunk) {
    layer_norm_param_grads_cols<double>(g, x, mean, rstd, dw_part, db_part, rows, cols, rows_per_chunk);
}
