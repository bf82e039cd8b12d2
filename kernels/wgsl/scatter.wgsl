// Scatters without atomics: every destination element gathers what lands on it.
//
// WGSL has atomics only for i32/u32, and an atomic float add would also make sums
// depend on scheduling. Instead one invocation owns each destination element and
// loops over the index list in order, so results are deterministic and match the
// reference's sequential np.add.at exactly (same summation order). The cost is
// (destination elements) x (index entries), fine for gradients of embeddings and
// gathers of moderate size.

@group(0) @binding(1) var<storage, read> vals: array<TA>;
@group(0) @binding(2) var<storage, read> idx: array<TI>;
@group(0) @binding(3) var<storage, read_write> dst: array<TA>;

// Advanced-index scatter into the view V of dst (getitem_grad, index_put).
//   p[0] elements of V   p[1] ndim of V   p[2] offset of V (i32)   p[3] nB   p[4] nR
//   p[8..16] V shape     p[16..24] V strides (i32)
//   p[24..32] per dimension: its stride if indexed by an array, else 0
//   p[32..40] per dimension: its row-major weight among the remaining dims, else 0
//   p[40] the value when V_SCALAR (bits of C)
// idx holds lin (i32): the offset within V that each index position b selects.
// vals is contiguous (nB, nR). ACCUM adds; otherwise the last matching entry wins.
// IS_BOOL keeps a bool sum at 1.
@compute @workgroup_size(WG)
fn scatter_lin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    var rem = i;
    var off = pi(2u);
    var key = 0i;
    var r = 0u;
    let nd = p[1];
    for (var k = 0u; k < nd; k++) {
        let d = nd - 1u - k;
        let c = rem % p[8u + d];
        rem = rem / p[8u + d];
        off += i32(c) * pi(16u + d);
        key += i32(c) * pi(24u + d);
        r += c * p[32u + d];
    }
    let nr = p[4];
    var acc = C(dst[off]);
    for (var b = 0u; b < p[3]; b++) {
        if (i32(idx[b]) == key) {
            var v: C;
            if (V_SCALAR) { v = bitcast<C>(p[40]); } else { v = C(vals[b * nr + r]); }
            if (ACCUM) { acc += v; } else { acc = v; }
        }
    }
    if (IS_BOOL) { acc = min(acc, C(1)); }  // NumPy's bool add is "or"
    dst[off] = TA(acc);
}

// Gradient of take_along_axis: dst[c] = sum over k with wrap(index[c, k]) == c[dim] of
// g[c, k] (c with its dim coordinate replaced by k). dst is contiguous and covers shape.
//   p[0] elements   p[1] ndim   p[2] index offset (i32)   p[3] g offset (i32)
//   p[4] dim   p[5] K (index size along dim)
//   p[8..16] dst shape   p[16..24] index strides   p[24..32] g strides   p[32..40] index shape
@compute @workgroup_size(WG)
fn gather_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let nd = p[1];
    let dim = p[4];
    var rem = i;
    var ioff = pi(2u);
    var goff = pi(3u);
    var want = 0i;
    var inside = true;
    for (var k = 0u; k < nd; k++) {
        let d = nd - 1u - k;
        let c = rem % p[8u + d];
        rem = rem / p[8u + d];
        if (d == dim) {
            want = i32(c);
        } else {
            if (c >= p[32u + d]) { inside = false; }
            ioff += i32(c) * pi(16u + d);
            goff += i32(c) * pi(24u + d);
        }
    }
    var acc = C(0);
    if (inside) {
        let size = p[8u + dim];
        for (var k = 0u; k < p[5]; k++) {
            var j = i32(idx[ioff + i32(k) * pi(16u + dim)]);
            if (j < 0i) { j += i32(size); }
            if (j == want) { acc += C(vals[goff + i32(k) * pi(24u + dim)]); }
        }
    }
    dst[i] = TA(acc);
}
