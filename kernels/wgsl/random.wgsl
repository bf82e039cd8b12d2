// Random tensors from Philox blocks: each invocation fills 4 consecutive elements.
//
//   p[0] elements   p[1], p[2] counter (lo, hi)   p[3], p[4] seed (lo, hi)
//   p[5], p[6] parameters: uniform low/high, normal mean/std, bernoulli p (f32 bits);
//              integers: low (i32) and the range size high - low (u32)
// KIND (compile-time): 0 uniform, 1 normal (Box-Muller), 2 integers, 3 bernoulli.

@group(0) @binding(1) var<storage, read_write> out: array<TO>;

const TWO_PI_F: f32 = 6.283185307179586;

fn value(kind_bits: vec4<u32>, j: u32) -> C {
    let x = kind_bits[j];
    if (KIND == 0u) {
        let lo = pf(5u);
        let hi = pf(6u);
        return C(unit_f(x) * (hi - lo) + lo);
    }
    if (KIND == 1u) {
        // pairs (0, 1) and (2, 3) each give two normals
        let pair = j & 2u;
        let u1 = f32((kind_bits[pair] >> 8u) + 1u) * 5.9604644775390625e-8;  // (0, 1]: log is finite
        let u2 = unit_f(kind_bits[pair + 1u]);
        let r = sqrt(-2.0 * log(u1));
        var z: f32;
        if ((j & 1u) == 0u) { z = r * cos_f(TWO_PI_F * u2); } else { z = r * sin_f(TWO_PI_F * u2); }
        return C(z * pf(6u) + pf(5u));
    }
    if (KIND == 2u) {
        // low + floor(x * range / 2^32): the high word of the product
        return C(pi(5u) + i32(mulhilo(x, p[6]).x));
    }
    return C(select(0.0, 1.0, unit_f(x) < pf(5u)));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let t = thread_index(wid, nwg, lid);
    let first = t * 4u;
    if (first >= p[0]) { return; }
    let bits = philox_block(t, p[1], p[2], p[3], p[4]);
    for (var j = 0u; j < 4u; j++) {
        if (first + j < p[0]) { out[first + j] = TO(value(bits, j)); }
    }
}
