// Reductions over any set of axes: sum, prod, max, min, argmax, argmin, mean.
//
// The host orders the input's dimensions as (kept..., reduced...) without copying,
// so output element `row` reduces nR elements found through two small indexers:
//   p[0] rows (output elements)   p[1] kept ndim    p[2] input offset (i32)
//   p[3] nR (elements per row)    p[4] reduced ndim
//   p[8..16]  kept shape          p[16..24] kept strides
//   p[24..32] reduced shape       p[32..40] reduced strides
// OP (compile-time): 0 sum, 1 prod, 2 max, 3 min, 4 argmax, 5 argmin, 6 mean.
// C is the accumulation type (f32 for floats, i32, u32 for uint32 and bool); TO the
// output storage (i32 for argmax/argmin). max/min propagate NaN and arg* return the
// first extreme (the first NaN if any), as NumPy. max/min start from the row's first
// element, which needs no identity value and is always present (the host rejects
// empty max/min).
//
// reduce_wg:     one workgroup per row; each invocation folds a strided share of the
//                row, then a tree reduction in workgroup memory combines the shares.
// reduce_thread: one invocation per row, for many short rows.

@group(0) @binding(1) var<storage, read> src: array<TA>;
@group(0) @binding(2) var<storage, read_write> out: array<TO>;

var<workgroup> sv: array<C, WG>;
var<workgroup> si: array<u32, WG>;

fn row_base(row: u32) -> i32 { return pi(2u) + offset_in(row, p[1], 8u, 16u); }
fn load(base: i32, j: u32) -> C { return C(src[base + offset_in(j, p[4], 24u, 32u)]); }

fn nan_c(x: C) -> bool { return isnan_f(f32(x)); }

// The (value, index) pair that survives combining (a, ia) with (b, ib).
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
    if (is_arg()) { return TO(idx); }
    if (OP == 6u) { return TO(v / C(p[3])); }
    return TO(v);
}

@compute @workgroup_size(WG)
fn reduce_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    let live = row < p[0];
    let n = p[3];
    var acc = identity();
    var idx = 0u;
    if (live) {
        let base = row_base(row);
        if (is_extreme()) { acc = load(base, 0u); }
        for (var j = lid; j < n; j += WG) {
            let v = load(base, j);
            if (is_arg()) {
                if (pick_b(acc, idx, v, j)) { acc = v; idx = j; }
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
        out[row] = finish(sv[0], si[0]);
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
