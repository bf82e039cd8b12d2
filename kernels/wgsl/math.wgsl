// Accurate float32 special functions.
//
// WGSL's built-in transcendental functions only promise loose accuracy (sin/cos to
// an absolute 2^-11, atan2 to thousands of ulps, tanh through exp with cancellation
// near zero), and several are undefined outside their domain (log and sqrt of
// negative numbers, pow of a negative base). The functions here follow NumPy's
// results to a few ulps and give NaN / infinities where NumPy does, so the wgpu
// backend agrees with the cpu reference. The polynomials are Cephes' single-precision
// ones (S. L. Moshier).

const PI_F: f32 = 3.14159265358979;
const PIO2_F: f32 = 1.5707963267948966;
const PIO4_F: f32 = 0.7853981633974483;
const TWO_OVER_SQRTPI_F: f32 = 1.1283791670955126;

fn log_f(x: f32) -> f32 {
    if (x < 0.0) { return nan_f(); }
    if (x == 0.0) { return -inf_f(); }
    return log(x);
}

fn sqrt_f(x: f32) -> f32 {
    if (x < 0.0) { return nan_f(); }
    return sqrt(x);
}

// log(1 + x) without losing the digits of a small x: log(u) * x / (u - 1) with u = 1 + x
// cancels the rounding error of u (Goldberg's trick).
fn log1p_f(x: f32) -> f32 {
    if (isnan_f(x) || x == inf_f()) { return x; }
    if (x < -1.0) { return nan_f(); }
    let u = 1.0 + x;
    if (u == 1.0) { return x; }
    return log_f(u) * x / (u - 1.0);
}

// exp(x) - 1, accurate near zero by the same device (used where |x| < 1: above that
// u - 1 loses nothing, and the product um1 * x could overflow).
fn expm1_f(x: f32) -> f32 {
    let u = exp(x);
    if (abs(x) >= 1.0 || isnan_f(x)) { return u - 1.0; }
    if (u == 1.0) { return x; }
    let um1 = u - 1.0;
    if (um1 == -1.0) { return -1.0; }
    return um1 * x / log(u);
}

// Cody-Waite reduction by pi/4 in three parts, then the minimax polynomials.
const DP1: f32 = 0.78515625;
const DP2: f32 = 2.4187564849853515625e-4;
const DP3: f32 = 3.77489497744594108e-8;
const FOPI: f32 = 1.27323954473516;

fn sin_poly(z: f32, zz: f32) -> f32 {
    return ((-1.9515295891e-4 * zz + 8.3321608736e-3) * zz - 1.6666654611e-1) * zz * z + z;
}

fn cos_poly(zz: f32) -> f32 {
    return ((2.443315711809948e-5 * zz - 1.388731625493765e-3) * zz + 4.166664568298827e-2) * zz * zz
        - 0.5 * zz + 1.0;
}

// Beyond |x| = 8192 the three-part reduction runs out of bits; the built-in takes over.
const REDUCTION_LIMIT: f32 = 8192.0;

fn sin_f(xx: f32) -> f32 {
    if (isnan_f(xx) || isinf_f(xx)) { return nan_f(); }
    if (abs(xx) > REDUCTION_LIMIT) { return sin(xx); }
    var sgn = 1.0;
    var x = xx;
    if (xx < 0.0) { sgn = -1.0; x = -xx; }
    var j = u32(FOPI * x);
    var y = f32(j);
    if ((j & 1u) == 1u) { j += 1u; y += 1.0; }
    j = j & 7u;
    if (j > 3u) { sgn = -sgn; j -= 4u; }
    let z = ((x - y * DP1) - y * DP2) - y * DP3;
    let zz = z * z;
    var r: f32;
    if (j == 1u || j == 2u) { r = cos_poly(zz); } else { r = sin_poly(z, zz); }
    return sgn * r;
}

fn cos_f(xx: f32) -> f32 {
    if (isnan_f(xx) || isinf_f(xx)) { return nan_f(); }
    if (abs(xx) > REDUCTION_LIMIT) { return cos(xx); }
    let x = abs(xx);
    var sgn = 1.0;
    var j = u32(FOPI * x);
    var y = f32(j);
    if ((j & 1u) == 1u) { j += 1u; y += 1.0; }
    j = j & 7u;
    if (j > 3u) { j -= 4u; sgn = -sgn; }
    if (j > 1u) { sgn = -sgn; }
    let z = ((x - y * DP1) - y * DP2) - y * DP3;
    let zz = z * z;
    var r: f32;
    if (j == 1u || j == 2u) { r = sin_poly(z, zz); } else { r = cos_poly(zz); }
    return sgn * r;
}

// tanh: a polynomial near zero (no cancellation), 1 - 2 / (exp(2|x|) + 1) elsewhere.
fn tanh_f(x: f32) -> f32 {
    if (isnan_f(x)) { return x; }
    let z = abs(x);
    if (z > 44.0) { return sign(x); }
    if (z >= 0.625) {
        let r = 1.0 - 2.0 / (exp(2.0 * z) + 1.0);
        return select(r, -r, x < 0.0);
    }
    let s = x * x;
    return ((((-5.70498872745e-3 * s + 2.06390887954e-2) * s - 5.37397155531e-2) * s
        + 1.33314422036e-1) * s - 3.33332819422e-1) * s * x + x;
}

fn atan_f(xx: f32) -> f32 {
    if (isnan_f(xx)) { return xx; }
    var x = abs(xx);
    var y = 0.0;
    if (x > 2.414213562373095) {
        y = PIO2_F;
        x = -(1.0 / x);
    } else if (x > 0.4142135623730950) {
        y = PIO4_F;
        x = (x - 1.0) / (x + 1.0);
    }
    let z = x * x;
    y += (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * x + x;
    return select(y, -y, xx < 0.0);
}

fn signbit_f(x: f32) -> bool { return (bitcast<u32>(x) & 0x80000000u) != 0u; }

// atan2 with the C99 / NumPy conventions for zeros and infinities.
fn atan2_f(y: f32, x: f32) -> f32 {
    if (isnan_f(x) || isnan_f(y)) { return nan_f(); }
    var r: f32;
    if (y == 0.0 && x == 0.0) {
        r = select(0.0, PI_F, signbit_f(x));
    } else if (isinf_f(x) && isinf_f(y)) {
        r = select(PIO4_F, 3.0 * PIO4_F, x < 0.0);
    } else if (x > 0.0) {
        r = atan_f(abs(y) / x);
    } else if (x == 0.0) {
        r = PIO2_F;
    } else {
        r = PI_F - atan_f(abs(y) / -x);
    }
    return select(r, -r, signbit_f(y));
}

// erf: its Taylor series below 0.5, 1 - erfc (a Chebyshev fit with fractional error
// under 1.2e-7, Numerical Recipes' erfcc) above.
fn erf_f(x: f32) -> f32 {
    if (isnan_f(x)) { return x; }
    let z = abs(x);
    if (z < 0.5) {
        let s = x * x;
        let series = 1.0 + s * (-1.0 / 3.0 + s * (1.0 / 10.0 + s * (-1.0 / 42.0 + s * (1.0 / 216.0
            + s * (-1.0 / 1320.0 + s * (1.0 / 9360.0))))));
        return TWO_OVER_SQRTPI_F * x * series;
    }
    if (z > 10.0) { return sign(x); }
    let t = 1.0 / (1.0 + 0.5 * z);
    let erfc = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277)))))))));
    return select(1.0 - erfc, erfc - 1.0, x < 0.0);
}

// C's fmod, exact: subtract the largest power-of-two multiple of |b| that fits, until
// |a| < |b| (each subtraction is exact by Sterbenz's lemma). a - b * trunc(a / b) is
// not: the quotient rounds. At most ~280 steps for float32 exponents.
fn fmod_f(a: f32, b: f32) -> f32 {
    if (isnan_f(a) || isnan_f(b) || isinf_f(a) || b == 0.0) { return nan_f(); }
    if (isinf_f(b)) { return a; }
    var x = abs(a);
    let y = abs(b);
    let ey = frexp(y).exp;
    for (var guard = 0; guard < 300 && x >= y; guard++) {
        var t = ldexp(y, frexp(x).exp - ey);
        if (t > x) { t = t * 0.5; }
        x = x - t;
    }
    return select(x, -x, signbit_f(a));
}

fn sigmoid_f(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

fn is_odd_integer_f(b: f32) -> bool {
    if (floor(b) != b || abs(b) >= 16777216.0) { return false; }  // every float this large is even
    let h = b * 0.5;
    return floor(h) != h;
}

// pow with NumPy's results for negative bases, zeros, and the exponents 0, 1, 2 and 0.5
// (computed exactly rather than through exp2(b * log2(a))).
fn pow_f(a: f32, b: f32) -> f32 {
    if (b == 0.0 || a == 1.0) { return 1.0; }
    if (isnan_f(a) || isnan_f(b)) { return nan_f(); }
    if (b == 1.0) { return a; }
    if (b == 2.0) { return a * a; }
    if (b == 0.5 && a >= 0.0 && !isinf_f(a)) { return sqrt(a); }
    if (a == 0.0 || isinf_f(a)) {
        // 0 and infinity: the magnitude is 0 or inf, the sign is the base's for odd integers
        let big = (a == 0.0) == (b < 0.0);
        let mag = select(0.0, inf_f(), big);
        return select(mag, -mag, signbit_f(a) && is_odd_integer_f(b));
    }
    let integral = floor(b) == b;
    if (a < 0.0 && !integral) { return nan_f(); }
    var r: f32;
    if (isinf_f(b)) {
        let m = abs(a);
        if (m == 1.0) { return 1.0; }
        r = select(0.0, inf_f(), (m > 1.0) == (b > 0.0));
        return r;
    }
    r = exp2(b * log2(abs(a)));
    if (a < 0.0 && is_odd_integer_f(b)) { r = -r; }
    return r;
}
