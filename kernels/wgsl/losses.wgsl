// Fused cross-entropy forward over (N, C) logits and integer class targets.
//
// One workgroup per row computes, with tree reductions in workgroup memory,
//   m = max(x),  lse = log(sum(exp(x - m))),  loss = lse - (x[t] - m)
// and with label smoothing eps: loss (1 - eps) + eps (lse - mean(x - m)).
// A row whose target equals ignore_index gets loss 0 and valid 0; the host sums the
// two outputs for the "mean" and "sum" reductions. Targets are not range-checked on
// the device (that needs a read-back); out-of-range ones are clamped into [0, C).
//   p[0] N   p[1] C   p[2] x offset (i32)   p[3] x row stride   p[4] x class stride
//   p[5] target offset   p[6] target stride   p[7] ignore_index (i32)   p[8] eps (f32)

@group(0) @binding(1) var<storage, read> x: array<TA>;
@group(0) @binding(2) var<storage, read> tgt: array<TI>;
@group(0) @binding(3) var<storage, read_write> loss: array<TA>;
@group(0) @binding(4) var<storage, read_write> valid: array<TA>;

var<workgroup> red: array<f32, WG>;

fn tree(lid: u32, v: f32, is_max: bool) -> f32 {
    red[lid] = v;
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            let a = red[lid];
            let b = red[lid + s];
            if (is_max) {
                red[lid] = select(select(max(a, b), b, isnan_f(b)), a, isnan_f(a));
            } else {
                red[lid] = a + b;
            }
        }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn cross_entropy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    let live = row < p[0];
    var n = 0u;
    var base = 0i;
    if (live) {
        n = p[1];
        base = pi(2u) + i32(row) * pi(3u);
    }
    let sc = pi(4u);
    var m = 0.0;
    if (n > 0u) { m = f32(x[base]); }
    for (var j = lid; j < n; j += WG) {
        let v = f32(x[base + i32(j) * sc]);
        if (isnan_f(v) || v > m) { m = v; }
    }
    m = tree(lid, m, true);
    var s = 0.0;
    var zsum = 0.0;
    for (var j = lid; j < n; j += WG) {
        let z = f32(x[base + i32(j) * sc]) - m;
        s += exp(z);
        zsum += z;
    }
    s = tree(lid, s, false);
    zsum = tree(lid, zsum, false);
    if (lid == 0u && live) {
        let t = i32(tgt[pi(5u) + i32(row) * pi(6u)]);
        if (t == pi(7u)) {
            loss[row] = TA(0.0);
            valid[row] = TA(0.0);
            return;
        }
        let tc = clamp(t, 0i, i32(n) - 1i);
        let lse = log(s);
        var l = lse - (f32(x[base + tc * sc]) - m);
        let eps = pf(8u);
        if (eps != 0.0) {
            l = l * (1.0 - eps) + eps * (lse - zsum / f32(n));
        }
        loss[row] = TA(l);
        valid[row] = TA(1.0);
    }
}
