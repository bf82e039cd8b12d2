// The binary operations, one WGSL function per op and compute type, shared by
// binary.wgsl (out-of-place, broadcasting) and binary_inplace.wgsl (a op= b).
// Suffixes: _f (f32, also for float16 storage), _i (i32), _u (u32), _b (bool as u32).

// ---- float (f32 compute) ---------------------------------------------------------
fn add_f(a: f32, b: f32) -> f32 { return a + b; }
fn sub_f(a: f32, b: f32) -> f32 { return a - b; }
fn mul_f(a: f32, b: f32) -> f32 { return a * b; }
fn div_f(a: f32, b: f32) -> f32 { return a / b; }
fn pow_ff(a: f32, b: f32) -> f32 { return pow_f(a, b); }
fn atan2_ff(a: f32, b: f32) -> f32 { return atan2_f(a, b); }
// fused_bias_gelu: gelu(x + bias), exact (erf) and tanh-approximated
fn bias_gelu_ff(x: f32, b: f32) -> f32 {
    let h = x + b;
    return 0.5 * h * (1.0 + erf_f(h * 0.7071067811865476));
}
fn bias_gelu_tanh_ff(x: f32, b: f32) -> f32 {
    let h = x + b;
    return 0.5 * h * (1.0 + tanh_f(0.7978845608028654 * (h + 0.044715 * h * h * h)));
}
// g * gelu'(h): the gradient of gelu at h (fused_bias_gelu_backward, with h = x + bias)
fn gelu_grad_ff(g: f32, h: f32) -> f32 {
    let cdf = 0.5 * (1.0 + erf_f(h * 0.7071067811865476));
    let pdf = exp(-0.5 * h * h) * 0.3989422804014327;
    return g * (cdf + h * pdf);
}
fn gelu_tanh_grad_ff(g: f32, h: f32) -> f32 {
    let t = tanh_f(0.7978845608028654 * (h + 0.044715 * h * h * h));
    let d_inner = (1.0 + 0.134145 * h * h) * 0.7978845608028654;
    return g * (0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * d_inner);
}
// relu's gradient g * (x > 0) (a product, so an infinite g times 0 is NaN, as the reference)
fn relu_grad_f(g: f32, x: f32) -> f32 { return g * select(0.0, 1.0, x > 0.0); }

// NumPy's divmod: the floored quotient and a remainder with the divisor's sign (fmod_f
// is the exact C fmod in math.wgsl)
fn floordiv_f(a: f32, b: f32) -> f32 {
    if (b == 0.0) { return a / b; }
    var m = fmod_f(a, b);
    var d = (a - m) / b;
    if (m != 0.0 && ((b < 0.0) != (m < 0.0))) { d -= 1.0; }
    if (d == 0.0) { return select(0.0, -0.0, (a / b) < 0.0); }
    var f = floor(d);
    if (d - f > 0.5) { f += 1.0; }
    return f;
}
fn remainder_f(a: f32, b: f32) -> f32 {
    var m = fmod_f(a, b);
    if (b == 0.0 || isnan_f(m)) { return m; }
    if (m != 0.0) {
        if ((b < 0.0) != (m < 0.0)) { m += b; }
    } else {
        m = select(0.0, -0.0, b < 0.0);
    }
    return m;
}
// NaN-propagating, as NumPy's maximum / minimum
fn maximum_f(a: f32, b: f32) -> f32 {
    if (isnan_f(a)) { return a; }
    if (isnan_f(b)) { return b; }
    return max(a, b);
}
fn minimum_f(a: f32, b: f32) -> f32 {
    if (isnan_f(a)) { return a; }
    if (isnan_f(b)) { return b; }
    return min(a, b);
}
fn eq_f(a: f32, b: f32) -> u32 { return select(0u, 1u, a == b && !isnan_f(a)); }
fn ne_f(a: f32, b: f32) -> u32 { return select(0u, 1u, a != b || isnan_f(a) || isnan_f(b)); }
fn lt_f(a: f32, b: f32) -> u32 { return select(0u, 1u, a < b); }
fn le_f(a: f32, b: f32) -> u32 { return select(0u, 1u, a <= b); }
fn gt_f(a: f32, b: f32) -> u32 { return select(0u, 1u, a > b); }
fn ge_f(a: f32, b: f32) -> u32 { return select(0u, 1u, a >= b); }

// ---- signed integer (i32): wrapping arithmetic, floored division, x // 0 == 0 -------
fn add_i(a: i32, b: i32) -> i32 { return a + b; }
fn sub_i(a: i32, b: i32) -> i32 { return a - b; }
fn mul_i(a: i32, b: i32) -> i32 { return a * b; }
fn floordiv_i(a: i32, b: i32) -> i32 {
    if (b == 0i) { return 0i; }
    let q = a / b;
    if ((a % b != 0i) && ((a < 0i) != (b < 0i))) { return q - 1i; }
    return q;
}
fn remainder_i(a: i32, b: i32) -> i32 {
    if (b == 0i) { return 0i; }
    let r = a % b;
    if (r != 0i && ((r < 0i) != (b < 0i))) { return r + b; }
    return r;
}
// exponentiation by squaring; negative exponents give 0 except for bases 1 and -1
fn pow_i(a: i32, b: i32) -> i32 {
    if (b < 0i) {
        if (a == 1i) { return 1i; }
        if (a == -1i) { return select(1i, -1i, (b & 1i) != 0i); }
        return 0i;
    }
    var r = 1i;
    var base = a;
    var e = b;
    while (e > 0i) {
        if ((e & 1i) != 0i) { r *= base; }
        base *= base;
        e = e >> 1u;
    }
    return r;
}
fn maximum_i(a: i32, b: i32) -> i32 { return max(a, b); }
fn relu_grad_i(g: i32, x: i32) -> i32 { return g * select(0i, 1i, x > 0i); }
fn minimum_i(a: i32, b: i32) -> i32 { return min(a, b); }
fn eq_i(a: i32, b: i32) -> u32 { return select(0u, 1u, a == b); }
fn ne_i(a: i32, b: i32) -> u32 { return select(0u, 1u, a != b); }
fn lt_i(a: i32, b: i32) -> u32 { return select(0u, 1u, a < b); }
fn le_i(a: i32, b: i32) -> u32 { return select(0u, 1u, a <= b); }
fn gt_i(a: i32, b: i32) -> u32 { return select(0u, 1u, a > b); }
fn ge_i(a: i32, b: i32) -> u32 { return select(0u, 1u, a >= b); }

// ---- unsigned integer (u32) --------------------------------------------------------
fn add_u(a: u32, b: u32) -> u32 { return a + b; }
fn sub_u(a: u32, b: u32) -> u32 { return a - b; }
fn mul_u(a: u32, b: u32) -> u32 { return a * b; }
fn floordiv_u(a: u32, b: u32) -> u32 { return select(a / max(b, 1u), 0u, b == 0u); }
fn remainder_u(a: u32, b: u32) -> u32 { return select(a % max(b, 1u), 0u, b == 0u); }
fn pow_u(a: u32, b: u32) -> u32 {
    var r = 1u;
    var base = a;
    var e = b;
    while (e > 0u) {
        if ((e & 1u) != 0u) { r *= base; }
        base *= base;
        e = e >> 1u;
    }
    return r;
}
fn maximum_u(a: u32, b: u32) -> u32 { return max(a, b); }
fn relu_grad_u(g: u32, x: u32) -> u32 { return g * select(0u, 1u, x > 0u); }
fn minimum_u(a: u32, b: u32) -> u32 { return min(a, b); }
fn eq_u(a: u32, b: u32) -> u32 { return select(0u, 1u, a == b); }
fn ne_u(a: u32, b: u32) -> u32 { return select(0u, 1u, a != b); }
fn lt_u(a: u32, b: u32) -> u32 { return select(0u, 1u, a < b); }
fn le_u(a: u32, b: u32) -> u32 { return select(0u, 1u, a <= b); }
fn gt_u(a: u32, b: u32) -> u32 { return select(0u, 1u, a > b); }
fn ge_u(a: u32, b: u32) -> u32 { return select(0u, 1u, a >= b); }

// ---- bool (u32 holding 0 or 1): NumPy's + is "or", * is "and" ------------------------
fn or_b(a: u32, b: u32) -> u32 { return select(0u, 1u, (a | b) != 0u); }
fn and_b(a: u32, b: u32) -> u32 { return select(0u, 1u, (a & b) != 0u); }
fn xor_b(a: u32, b: u32) -> u32 { return select(0u, 1u, (a != 0u) != (b != 0u)); }
