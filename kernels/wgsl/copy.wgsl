// Strided copy with dtype conversion: dst[strided i] = convert(src[strided i]).
//
// The one layout kernel: it materializes a non-contiguous view, writes into a view
// (in-place updates, cat, pad, getitem_grad of slices), casts between dtypes, clones,
// and (SRC_SCALAR) fills a view with one value. Operand 0 of the indexer is dst,
// operand 1 is src. Conversions follow NumPy's astype: to bool is "not zero",
// between i32 and u32 the bits are kept, floats to integers truncate (WRAP_NEG:
// negative floats into u32 wrap around).
//
//   p[EXTRA]   the fill value when SRC_SCALAR, as bits of CO (the compute type of TO)

@group(0) @binding(1) var<storage, read> src: array<TA>;
@group(0) @binding(2) var<storage, read_write> dst: array<TO>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let o = offsets(i);
    if (SRC_SCALAR) {
        dst[o.x] = TO(bitcast<CO>(p[EXTRA]));
        return;
    }
    let v = src[o.y];
    if (TO_BOOL) {
        // "not equal to zero", written as !(v == 0): an ordered != would call NaN false
        dst[o.x] = TO(select(1u, 0u, v == TA(0)));
    } else if (WRAP_NEG) {
        // float -> u32: negative values wrap through i32, as NumPy's astype on x86
        dst[o.x] = TO(select(u32(v), u32(i32(v)), v < TA(0)));
    } else {
        dst[o.x] = TO(v);
    }
}
