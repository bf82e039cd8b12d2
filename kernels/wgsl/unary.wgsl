// Elementwise unary operations: out[i] = op(a[strided i]).
//
// The input may be any strided view; the output is a new contiguous buffer. The
// prelude picks the storage types (TA in, TO out), the compute type C (f32 for
// float16/float32, i32, u32; bool is u32 holding 0 or 1), the result type R, and
// defines `fn op(x: C) -> R` as one of the functions below.
//
// Scalar attributes sit after the indexer:
//   p[EXTRA + 0], p[EXTRA + 1]   s0, s1 (f32 bits for float ops, i32/u32 for integer ops)
//   p[EXTRA + 2], p[EXTRA + 3]   flags (clamp: whether min / max is given)

@group(0) @binding(1) var<storage, read> a: array<TA>;
@group(0) @binding(2) var<storage, read_write> out: array<TO>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let o = offsets(i);
    out[i] = TO(op(C(a[o.x])));
}

fn s0f() -> f32 { return pf(EXTRA); }
fn s1f() -> f32 { return pf(EXTRA + 1u); }
fn has_s0() -> bool { return p[EXTRA + 2u] != 0u; }
fn has_s1() -> bool { return p[EXTRA + 3u] != 0u; }

// ---- float (f32 compute) ---------------------------------------------------------
fn neg_f(x: f32) -> f32 { return -x; }
fn abs_f(x: f32) -> f32 { return abs(x); }
fn sign_f(x: f32) -> f32 {
    if (isnan_f(x)) { return x; }
    return select(select(0.0, -1.0, x < 0.0), 1.0, x > 0.0);
}
fn exp_f(x: f32) -> f32 { return exp(x); }
fn rsqrt_f(x: f32) -> f32 { return 1.0 / sqrt_f(x); }
fn floor_f(x: f32) -> f32 { return floor(x); }
fn ceil_f(x: f32) -> f32 { return ceil(x); }
fn round_f(x: f32) -> f32 { return round(x); }  // halves to even, as NumPy
fn logical_not_f(x: f32) -> u32 { return select(0u, 1u, x == 0.0); }
fn relu_f(x: f32) -> f32 { return select(0.0, x, x > 0.0 || isnan_f(x)); }
fn leaky_relu_f(x: f32) -> f32 { return select(x * s0f(), x, x > 0.0); }
fn gelu_f(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f(x * 0.7071067811865476)); }
fn gelu_tanh_f(x: f32) -> f32 {
    let inner = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + tanh_f(inner));
}
fn silu_f(x: f32) -> f32 { return x * sigmoid_f(x); }
// softplus with beta = s0 and threshold = s1: linear above the threshold, as PyTorch
fn softplus_f(x: f32) -> f32 {
    if (isnan_f(x)) { return x; }
    let bx = x * s0f();
    if (bx > s1f()) { return x; }
    return log1p_f(exp(min(bx, s1f()))) / s0f();
}
// NaN-propagating maximum / minimum against the optional bounds s0 / s1
fn clamp_f(x: f32) -> f32 {
    var r = x;
    if (isnan_f(r)) { return r; }
    if (has_s0()) { let lo = s0f(); r = select(r, lo, lo > r || isnan_f(lo)); }
    if (has_s1()) { let hi = s1f(); r = select(r, hi, hi < r || isnan_f(hi)); }
    return r;
}

// ---- signed integer (i32) --------------------------------------------------------
fn neg_i(x: i32) -> i32 { return -x; }
fn abs_i(x: i32) -> i32 { return abs(x); }
fn sign_i(x: i32) -> i32 { return sign(x); }
fn identity_i(x: i32) -> i32 { return x; }
fn logical_not_i(x: i32) -> u32 { return select(0u, 1u, x == 0i); }
fn relu_i(x: i32) -> i32 { return max(x, 0i); }
fn clamp_i(x: i32) -> i32 {
    var r = x;
    if (has_s0()) { r = max(r, pi(EXTRA)); }
    if (has_s1()) { r = min(r, pi(EXTRA + 1u)); }
    return r;
}

// ---- unsigned integer (u32) and bool (u32 holding 0 or 1) -------------------------
fn neg_u(x: u32) -> u32 { return 0u - x; }  // wraps, as NumPy's uint32
fn sign_u(x: u32) -> u32 { return min(x, 1u); }
fn identity_u(x: u32) -> u32 { return x; }
fn logical_not_u(x: u32) -> u32 { return select(0u, 1u, x == 0u); }
fn clamp_u(x: u32) -> u32 {
    var r = x;
    if (has_s0()) { r = max(r, p[EXTRA]); }
    if (has_s1()) { r = min(r, p[EXTRA + 1u]); }
    return r;
}
