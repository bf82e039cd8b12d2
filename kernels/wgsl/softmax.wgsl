// Fused softmax / log-softmax along one axis, one workgroup per row.
//
// Layout as scan.wgsl: p[0] rows, p[1] grid ndim, p[2] input offset, p[3] row length
// L, p[4] input stride along the axis, p[5] output stride along the axis, p[8..16]
// grid shape, p[16..24] input strides, p[24..32] output strides.
// Three passes over the row, each finished by a tree reduction in workgroup memory:
// the maximum m, then s = sum(exp(x - m)), then out = exp(x - m) / s (LOG: x - m - log s).
// Subtracting the maximum keeps exp from overflowing, as the reference does.

@group(0) @binding(1) var<storage, read> src: array<TA>;
@group(0) @binding(2) var<storage, read_write> out: array<TA>;

var<workgroup> red: array<f32, WG>;

fn max_nan(a: f32, b: f32) -> f32 {
    if (isnan_f(a)) { return a; }
    if (isnan_f(b)) { return b; }
    return max(a, b);
}

fn tree_max(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) { red[lid] = max_nan(red[lid], red[lid + s]); }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn tree_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    let live = row < p[0];
    var ib = 0i;
    var ob = 0i;
    var n = 0u;
    if (live) {
        ib = pi(2u) + offset_in(row, p[1], 8u, 16u);
        ob = offset_in(row, p[1], 8u, 24u);
        n = p[3];
    }
    let si = pi(4u);
    let so = pi(5u);
    // the row's first element stands in for -inf as the starting maximum
    var m = 0.0;
    if (n > 0u) { m = f32(src[ib]); }
    for (var j = lid; j < n; j += WG) {
        let v = f32(src[ib + i32(j) * si]);
        if (isnan_f(v) || v > m) { m = v; }
    }
    m = tree_max(lid, m);
    var s = 0.0;
    for (var j = lid; j < n; j += WG) {
        s += exp(f32(src[ib + i32(j) * si]) - m);
    }
    s = tree_sum(lid, s);
    let ls = log(s);
    for (var j = lid; j < n; j += WG) {
        let z = f32(src[ib + i32(j) * si]) - m;
        if (LOG) {
            out[ob + i32(j) * so] = TA(z - ls);
        } else {
            out[ob + i32(j) * so] = TA(exp(z) / s);
        }
    }
}
