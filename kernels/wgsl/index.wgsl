// Gathers: advanced (integer-array) indexing and take_along_axis.
//
// Advanced indexing is done in two steps. `lin_accumulate` turns each index array
// (broadcast to the common index shape B) into element offsets and sums them:
//   lin[i] = (ACC ? lin_in[i] : 0) + wrap(idx[.]) * stride
// where wrap maps negative indices from the end. `gather_lin` then copies, for every
// index position b and every position r of the remaining (sliced) dimensions,
//   out[b * nR + r] = src[base + lin[b] + offset of r].
// Indices are not bounds-checked on the device (that would need a read-back);
// out-of-range ones are clamped into the dimension, so reads stay inside the buffer.

@group(0) @binding(1) var<storage, read> src: array<TA>;
@group(0) @binding(2) var<storage, read> idx: array<TI>;
@group(0) @binding(3) var<storage, read_write> out: array<TO>;

fn wrap(i: i32, size: u32) -> i32 {
    var j = i;
    if (j < 0i) { j += i32(size); }
    return clamp(j, 0i, i32(size) - 1i);
}

// indexer operands: 0 = idx (broadcast), 1 = lin_in (contiguous, when ACC)
//   p[EXTRA] size of the indexed dimension   p[EXTRA + 1] its stride (i32)
// src is lin_in (i32), out is lin (i32)
@compute @workgroup_size(WG)
fn lin_accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let o = offsets(i);
    var acc = 0i;
    if (ACC) { acc = i32(src[i]); }
    out[i] = TO(acc + wrap(i32(idx[o.x]), p[EXTRA]) * pi(EXTRA + 1u));
}

//   p[0] elements   p[1] ndim of the remaining dims   p[2] base offset (i32)   p[3] nR
//   p[8..16] remaining shape   p[16..24] remaining strides
// idx is lin (i32)
@compute @workgroup_size(WG)
fn gather_lin(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let nr = p[3];
    let b = i / nr;
    let r = i % nr;
    out[i] = TO(src[pi(2u) + i32(idx[b]) + offset_in(r, p[1], 8u, 16u)]);
}

// take_along_axis: out[c] = src[c with c[dim] = wrap(index[c])], all broadcast.
// indexer operands: 0 = index, 1 = src with the stride of dim set to 0
//   p[EXTRA] size of dim in src   p[EXTRA + 1] stride of dim in src (i32)
@compute @workgroup_size(WG)
fn take_along(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let o = offsets(i);
    let k = wrap(i32(idx[o.x]), p[EXTRA]);
    out[i] = TO(src[o.y + k * pi(EXTRA + 1u)]);
}
