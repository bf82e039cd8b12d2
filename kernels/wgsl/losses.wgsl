// Fused cross-entropy over (N, C) logits and integer class targets: the forward
// (cross_entropy_rows) and the first-order gradient with respect to the logits
// (cross_entropy_grad_rows).
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
@group(0) @binding(3) var<storage, read_write> loss: array<TA>;   // the gradient, in the grad kernel
@group(0) @binding(4) var<storage, read_write> valid: array<TA>;  // unused by the grad kernel
@group(0) @binding(5) var<storage, read> gin: array<TA>;          // the incoming gradient (grad kernel)

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

// d loss / d x = (softmax(x) - (1 - eps) onehot(t) - eps / C) * valid * scale, where the
// scale is g / (number of valid rows) for "mean" (counted here by the workgroup), g for
// "sum" and g[row] for "none" (REDUCTION 0 / 1 / 2). The output is dense (N, C).
//   p[9] g offset   p[10] g stride (rows, for "none")
@compute @workgroup_size(WG)
fn cross_entropy_grad_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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
    let ignore = pi(7u);
    var count = 1.0;
    if (REDUCTION == 0u) {
        var c = 0.0;
        for (var r = lid; r < p[0]; r += WG) {
            if (i32(tgt[pi(5u) + i32(r) * pi(6u)]) != ignore) { c += 1.0; }
        }
        count = tree(lid, c, false);
    }
    var m = 0.0;
    if (n > 0u) { m = f32(x[base]); }
    for (var j = lid; j < n; j += WG) {
        let v = f32(x[base + i32(j) * sc]);
        if (isnan_f(v) || v > m) { m = v; }
    }
    m = tree(lid, m, true);
    var s = 0.0;
    for (var j = lid; j < n; j += WG) {
        s += exp(f32(x[base + i32(j) * sc]) - m);
    }
    s = tree(lid, s, false);
    if (!live) { return; }
    let t = i32(tgt[pi(5u) + i32(row) * pi(6u)]);
    var scale = 0.0;
    if (t != ignore) {
        if (REDUCTION == 2u) {
            scale = f32(gin[pi(9u) + i32(row) * pi(10u)]);
        } else {
            scale = f32(gin[pi(9u)]) / count;
        }
    }
    let eps = pf(8u);
    let tc = clamp(t, 0i, i32(n) - 1i);
    for (var j = lid; j < n; j += WG) {
        let prob = exp(f32(x[base + i32(j) * sc]) - m) / s;
        var d = prob - eps / f32(n);
        if (i32(j) == tc) { d -= 1.0 - eps; }
        loss[row * n + j] = TA(d * scale);
    }
}
