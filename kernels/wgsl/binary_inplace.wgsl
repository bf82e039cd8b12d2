// In-place binary updates a op= b (add_, sub_, mul_, div_), as optimizers and `x += y`
// use them: a is read and written through one binding, so it may be any strided view;
// b broadcasts to a's shape (indexer operands 0 = a, 1 = b) or, with B_SCALAR, is the
// Python scalar in p[EXTRA + 1] (bits of C). The host copies b first when it shares a's
// buffer, since one buffer cannot be bound for reading and writing at once.

@group(0) @binding(1) var<storage, read_write> a: array<TA>;
@group(0) @binding(2) var<storage, read> b: array<TA>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let o = offsets(i);
    var y: C;
    if (B_SCALAR) { y = bitcast<C>(p[EXTRA + 1u]); } else { y = C(b[o.y]); }
    a[o.x] = TA(op(C(a[o.x]), y));
}
