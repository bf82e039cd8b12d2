// Elementwise selection with broadcasting: out[i] = cond[.] != 0 ? a[.] : b[.].
//
// Operands 0, 1, 2 of the indexer are cond, a and b. The condition may have any
// dtype (its truth is "not zero"); a and b share the storage type TA, unless
// A_SCALAR / B_SCALAR say a Python scalar stands in for them, held in
// p[EXTRA + 0] / p[EXTRA + 1] as bits of the compute type C.

@group(0) @binding(1) var<storage, read> cond: array<TW>;
@group(0) @binding(2) var<storage, read> a: array<TA>;
@group(0) @binding(3) var<storage, read> b: array<TA>;
@group(0) @binding(4) var<storage, read_write> out: array<TA>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let o = offsets(i);
    if (!(cond[o.x] == TW(0))) {  // NaN is true, and an ordered != would say otherwise
        if (A_SCALAR) { out[i] = TA(bitcast<C>(p[EXTRA])); } else { out[i] = a[o.y]; }
    } else {
        if (B_SCALAR) { out[i] = TA(bitcast<C>(p[EXTRA + 1u])); } else { out[i] = b[o.z]; }
    }
}
