// First-order gradients of softmax and log-softmax from their output y, one workgroup
// per row (the fused kernels behind softmax_backward / log_softmax_backward):
//   softmax:      dx = g y - y sum(g y)
//   log-softmax:  dx = g - exp(y) sum(g)
// Layout as softmax.wgsl, with the strides of g after those of y:
//   p[0] rows  p[1] grid ndim  p[2] y offset  p[3] row length  p[4] y stride along the
//   axis  p[5] output stride along the axis  p[6] g offset  p[7] g stride along the axis
//   p[8..16] grid shape  p[16..24] y strides  p[24..32] output strides  p[32..40] g strides

@group(0) @binding(1) var<storage, read> y: array<TA>;
@group(0) @binding(2) var<storage, read> g: array<TA>;
@group(0) @binding(3) var<storage, read_write> out: array<TA>;

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wid, nwg);
    let live = row < p[0];
    var yb = 0i;
    var gb = 0i;
    var ob = 0i;
    var n = 0u;
    if (live) {
        yb = pi(2u) + offset_in(row, p[1], 8u, 16u);
        gb = pi(6u) + offset_in(row, p[1], 8u, 32u);
        ob = offset_in(row, p[1], 8u, 24u);
        n = p[3];
    }
    let sy = pi(4u);
    let sg = pi(7u);
    let so = pi(5u);
    var s = 0.0;
    for (var j = lid; j < n; j += WG) {
        let gj = f32(g[gb + i32(j) * sg]);
        if (LOG) { s += gj; } else { s += gj * f32(y[yb + i32(j) * sy]); }
    }
    s = tree_sum(lid, s);
    for (var j = lid; j < n; j += WG) {
        let gj = f32(g[gb + i32(j) * sg]);
        let yj = f32(y[yb + i32(j) * sy]);
        if (LOG) {
            out[ob + i32(j) * so] = TA(gj - exp(yj) * s);
        } else {
            out[ob + i32(j) * so] = TA(gj * yj - yj * s);
        }
    }
}
