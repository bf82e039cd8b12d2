// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator. Output block = philox(counter, key); any element can be
// computed independently, so a tensor of random numbers is one dispatch and a seed
// plus a counter offset reproduce it exactly.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// (high, low) words of the 64-bit product a * b, from 16-bit halves (WGSL has no u64).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        let p0 = mulhilo(PHILOX_M0, c.x);
        let p1 = mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k += vec2<u32>(PHILOX_W0, PHILOX_W1);
    }
    return c;
}

// The block for thread t of a draw starting at the 64-bit counter (lo, hi) with a 64-bit seed.
fn philox_block(t: u32, base_lo: u32, base_hi: u32, seed_lo: u32, seed_hi: u32) -> vec4<u32> {
    let lo = base_lo + t;
    let carry = select(0u, 1u, lo < base_lo);
    return philox4x32_10(vec4<u32>(lo, base_hi + carry, 0u, 0u), vec2<u32>(seed_lo, seed_hi));
}

// 24 random bits as a float in [0, 1).
fn unit_f(x: u32) -> f32 { return f32(x >> 8u) * 5.9604644775390625e-8; }
