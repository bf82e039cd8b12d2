// Elementwise binary operations with broadcasting: out[i] = op(a[.], b[.]).
//
// Broadcasting is done by the strides (0 along broadcast dimensions), so inputs of
// different shapes and arbitrary views need no copy. A Python scalar operand is not
// a buffer: A_SCALAR / B_SCALAR (compile-time) say that a / b come from the
// parameters instead, as bits of the compute type:
//   p[EXTRA + 0]   scalar a      p[EXTRA + 1]   scalar b
// The prelude gives TA, TB (storage of a, b), TO (storage of the output), C (compute
// type), R (result type: C, or u32 for comparisons) and `fn op(a: C, b: C) -> R`.

@group(0) @binding(1) var<storage, read> a: array<TA>;
@group(0) @binding(2) var<storage, read> b: array<TB>;
@group(0) @binding(3) var<storage, read_write> out: array<TO>;

fn scalar_c(word: u32) -> C { return bitcast<C>(p[word]); }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let o = offsets(i);
    var x: C;
    var y: C;
    if (A_SCALAR) { x = scalar_c(EXTRA); } else { x = C(a[o.x]); }
    if (B_SCALAR) { y = scalar_c(EXTRA + 1u); } else { y = C(b[o.y]); }
    out[i] = TO(op(x, y));
}
