// Reductions over any set of axes: sum, prod, max, min, argmax, argmin, mean.
//
// The host orders the input's dimensions as (kept..., reduced...) without copying,
// so output element `row` reduces nR elements found through two small indexers:
//   p[0] rows (output elements)   p[1] kept ndim    p[2] input offset (i32)
//   p[3] nR (elements per row)    p[4] reduced ndim
//   p[5] chunks per row (PASS 1)  p[6] elements per chunk (PASS 1)
//   p[7] the count a mean divides by
//   p[8..16]  kept shape          p[16..24] kept strides
//   p[24..32] reduced shape       p[32..40] reduced strides
// OP (compile-time): 0 sum, 1 prod, 2 max, 3 min, 4 argmax, 5 argmin, 6 mean.
// C is the accumulation type (f32 for floats, i32, u32 for uint32 and bool); TO the
// output storage (i32 for argmax/argmin). max/min propagate NaN and arg* return the
// first extreme (the first NaN if any), as NumPy. max/min start from the row's first
// element, which needs no identity value and is always present (the host rejects
// empty max/min). R_LINEAR says the reduced elements of a row are one strided run
// (reduced ndim <= 1), which needs no index arithmetic.
//
// reduce_wg:     one workgroup per row; each invocation folds a strided share of the
//                row, then a tree reduction in workgroup memory combines the shares.
//                Long rows are split (PASS 1): each of p[5] workgroups per row reduces
//                one chunk into partial values (and, for arg*, indices), which a
//                second launch (PASS 2) combines; PASS 0 is the single launch.
// reduce_thread: one invocation per row, for many short rows.

@group(0) @binding(1) var<storage, read> src: array<TA>;
@group(0) @binding(2) var<storage, read_write> out: array<TO>;
@group(0) @binding(3) var<storage, read_write> idx_out: array<u32>;  // PASS 1: partial arg indices
@group(0) @binding(4) var<storage, read> idx_in: array<u32>;         // PASS 2: the same, read back

var<workgroup> sv: array<C, WG>;
var<workgroup> si: array<u32, WG>;

fn row_base(row: u32) -> i32 {
    if (PASS == 2u) { return i32(row * p[3]); }  // partials are dense (rows, chunks)
    return pi(2u) + offset_in(row, p[1], 8u, 16u);
}

fn elem(base: i32, j: u32) -> i32 {
    if (PASS == 2u) { return base + i32(j); }
    if (R_LINEAR) { return base + i32(j) * pi(32u); }
    return base + offset_in(j, p[4], 24u, 32u);
}

fn load(base: i32, j: u32) -> C { return C(src[elem(base, j)]); }

// the index an element stands for: its position, or in PASS 2 the partial's index
fn index_of(base: i32, j: u32) -> u32 {
    if (PASS == 2u) { return idx_in[elem(base, j)]; }
    return j;
}

fn nan_c(x: C) -> bool { return isnan_f(f32(x)); }

// Whether (b, ib) survives combining with (a, ia).
fn pick_b(a: C, ia: u32, b: C, ib: u32) -> bool {
    let na = nan_c(a);
    let nb = nan_c(b);
    if (na || nb) { return nb && (!na || ib < ia); }
    if (OP == 2u || OP == 4u) { return b > a || (b == a && ib < ia); }
    return b < a || (b == a && ib < ia);
}

fn combine(a: C, b: C) -> C {
    if (OP == 1u) { return a * b; }
    if (OP == 2u || OP == 3u) {
        if (pick_b(a, 0u, b, 1u)) { return b; }
        return a;
    }
    return a + b;
}

fn identity() -> C {
    if (OP == 1u) { return C(1); }
    return C(0);
}

fn is_arg() -> bool { return OP == 4u || OP == 5u; }
fn is_extreme() -> bool { return OP >= 2u && OP <= 5u; }

fn finish(v: C, idx: u32) -> TO {
    if (is_arg() && PASS != 1u) { return TO(idx); }
    if (OP == 6u && PASS != 1u) { return TO(v / C(p[7])); }
    return TO(v);
}

@compute @workgroup_size(WG)
fn reduce_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let g = group_index(wid, nwg);
    var row = g;
    var lo = 0u;
    var hi = p[3];
    if (PASS == 1u) {
        row = g / p[5];
        lo = (g % p[5]) * p[6];
        hi = min(hi, lo + p[6]);
    }
    let live = row < p[0];
    var acc = identity();
    var idx = 0u;
    if (live) {
        let base = row_base(row);
        if (is_extreme()) {
            acc = load(base, lo);
            idx = index_of(base, lo);
        }
        for (var j = lo + lid; j < hi; j += WG) {
            let v = load(base, j);
            if (is_arg()) {
                let k = index_of(base, j);
                if (pick_b(acc, idx, v, k)) { acc = v; idx = k; }
            } else {
                acc = combine(acc, v);
            }
        }
    }
    sv[lid] = acc;
    si[lid] = idx;
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            if (is_arg()) {
                if (pick_b(sv[lid], si[lid], sv[lid + s], si[lid + s])) {
                    sv[lid] = sv[lid + s];
                    si[lid] = si[lid + s];
                }
            } else {
                sv[lid] = combine(sv[lid], sv[lid + s]);
            }
        }
    }
    if (lid == 0u && live) {
        out[g] = finish(sv[0], si[0]);
        if (PASS == 1u && is_arg()) { idx_out[g] = si[0]; }
    }
}

@compute @workgroup_size(WG)
fn reduce_thread(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let row = thread_index(wid, nwg, lid);
    if (row >= p[0]) { return; }
    let base = row_base(row);
    let n = p[3];
    var acc = identity();
    var idx = 0u;
    if (is_extreme()) { acc = load(base, 0u); }
    for (var j = 0u; j < n; j++) {
        let v = load(base, j);
        if (is_arg()) {
            if (pick_b(acc, idx, v, j)) { acc = v; idx = j; }
        } else {
            acc = combine(acc, v);
        }
    }
    out[row] = finish(acc, idx);
}
