// Fused layer norm over the last dimension, one workgroup per row of n elements.
//
// forward:  mu = mean(x), rstd = 1 / sqrt(mean((x - mu)^2) + eps),
//           y = (x - mu) rstd (* weight) (+ bias)
// backward: with xhat = (x - mu) rstd and gw = g (* weight),
//           dx = (gw - mean(gw) - xhat mean(gw xhat)) rstd,
//           and per row g * xhat, which the host sums over rows for d weight
//           (d bias is the row sum of g).
// The mean is subtracted before squaring (two passes), as the reference does.
//   p[0] rows   p[1] n   p[2] x offset   p[3] x row stride   p[4] eps (f32)
//   p[5] g offset   p[6] g row stride   p[7] weight offset   p[8] bias offset
//   (x and g are contiguous along a row; weight and bias are contiguous)
// HAS_WEIGHT / HAS_BIAS (compile-time) say whether weight / bias are given.

@group(0) @binding(1) var<storage, read> x: array<TA>;
@group(0) @binding(2) var<storage, read> w: array<TA>;
@group(0) @binding(3) var<storage, read> b: array<TA>;   // forward: bias; backward: g
@group(0) @binding(4) var<storage, read_write> out: array<TA>;   // y, or dx
@group(0) @binding(5) var<storage, read_write> out2: array<TA>;  // backward: g * xhat

var<workgroup> red: array<f32, WG>;

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

fn row_stats(lid: u32, base: i32, n: u32) -> vec2<f32> {
    var s = 0.0;
    for (var j = lid; j < n; j += WG) { s += f32(x[base + i32(j)]); }
    let mu = tree_sum(lid, s) / f32(max(n, 1u));
    var v = 0.0;
    for (var j = lid; j < n; j += WG) {
        let d = f32(x[base + i32(j)]) - mu;
        v += d * d;
    }
    let var_ = tree_sum(lid, v) / f32(max(n, 1u));
    return vec2<f32>(mu, 1.0 / sqrt(var_ + pf(4u)));
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    let live = row < p[0];
    var n = 0u;
    if (live) { n = p[1]; }
    let base = pi(2u) + i32(row) * pi(3u);
    let st = row_stats(lid, base, n);
    for (var j = lid; j < n; j += WG) {
        var y = (f32(x[base + i32(j)]) - st.x) * st.y;
        if (HAS_WEIGHT) { y = y * f32(w[pi(7u) + i32(j)]); }
        if (HAS_BIAS) { y = y + f32(b[pi(8u) + i32(j)]); }
        out[row * n + j] = TA(y);
    }
}

@compute @workgroup_size(WG)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    let live = row < p[0];
    var n = 0u;
    if (live) { n = p[1]; }
    let base = pi(2u) + i32(row) * pi(3u);
    let gbase = pi(5u) + i32(row) * pi(6u);
    let st = row_stats(lid, base, n);
    var sa = 0.0;
    var sb = 0.0;
    for (var j = lid; j < n; j += WG) {
        let xhat = (f32(x[base + i32(j)]) - st.x) * st.y;
        var gw = f32(b[gbase + i32(j)]);
        if (HAS_WEIGHT) { gw = gw * f32(w[pi(7u) + i32(j)]); }
        sa += gw;
        sb += gw * xhat;
    }
    let a = tree_sum(lid, sa) / f32(max(n, 1u));
    let c = tree_sum(lid, sb) / f32(max(n, 1u));
    for (var j = lid; j < n; j += WG) {
        let xhat = (f32(x[base + i32(j)]) - st.x) * st.y;
        let g = f32(b[gbase + i32(j)]);
        var gw = g;
        if (HAS_WEIGHT) { gw = gw * f32(w[pi(7u) + i32(j)]); }
        out[row * n + j] = TA((gw - a - xhat * c) * st.y);
        out2[row * n + j] = TA(g * xhat);
    }
}
