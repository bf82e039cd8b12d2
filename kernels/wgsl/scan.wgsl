// Inclusive prefix sum (cumsum) along one axis, one invocation per line.
//
//   p[0] lines   p[1] ndim of the line grid   p[2] input offset (i32)   p[3] line length L
//   p[4] input stride along the axis (i32)    p[5] output stride along the axis
//   p[8..16] line-grid shape   p[16..24] its input strides   p[24..32] its output strides
// Sequential within a line, so sums are accumulated in the reference's order.

@group(0) @binding(1) var<storage, read> src: array<TA>;
@group(0) @binding(2) var<storage, read_write> out: array<TO>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let line = thread_index(wid, nwg, lid);
    if (line >= p[0]) { return; }
    let nd = p[1];
    let ib = pi(2u) + offset_in(line, nd, 8u, 16u);
    let ob = offset_in(line, nd, 8u, 24u);
    var acc = C(0);
    for (var j = 0u; j < p[3]; j++) {
        acc += C(src[ib + i32(j) * pi(4u)]);
        out[ob + i32(j) * pi(5u)] = TO(acc);
    }
}
