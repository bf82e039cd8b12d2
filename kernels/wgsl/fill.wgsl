// Ranges: out[i] = start + i * step, computed in the compute type C of the output
// (f32 for floats, so float ranges round like NumPy's float32 arange).
//
//   p[0]       number of elements
//   p[EXTRA]   start, p[EXTRA + 1] step (bits of C)

@group(0) @binding(1) var<storage, read_write> out: array<TO>;

@compute @workgroup_size(WG)
fn arange(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let start = bitcast<C>(p[EXTRA]);
    let step = bitcast<C>(p[EXTRA + 1u]);
    out[i] = TO(start + C(i) * step);
}
