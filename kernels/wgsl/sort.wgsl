// Random permutations: sort (random key, index) pairs with a bitonic network.
//
// `perm_init` gives element i < n a Philox key and the index i, and the padding up to
// the power of two P the largest key; `bitonic_step` is one compare-exchange stage
// (k, j) of the network, launched log2(P) (log2(P) + 1) / 2 times. Ties of keys are
// broken by index, so the order is total and the result a permutation.
//   perm_init:    p[0] P   p[1] n   p[2], p[3] counter   p[4], p[5] seed
//   bitonic_step: p[0] P   p[1] j   p[2] k

@group(0) @binding(1) var<storage, read_write> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> idx: array<u32>;

@compute @workgroup_size(WG)
fn perm_init(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    idx[i] = i;
    if (i >= p[1]) {
        keys[i] = 0xffffffffu;
        return;
    }
    let bits = philox_block(i / 4u, p[2], p[3], p[4], p[5]);
    keys[i] = bits[i % 4u];
}

fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka < kb || (ka == kb && ia < ib);
}

@compute @workgroup_size(WG)
fn bitonic_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let partner = i ^ p[1];
    if (partner <= i) { return; }
    let ascending = (i & p[2]) == 0u;
    let ka = keys[i];
    let kb = keys[partner];
    let ia = idx[i];
    let ib = idx[partner];
    if (before(kb, ib, ka, ia) == ascending) {
        keys[i] = kb;
        keys[partner] = ka;
        idx[i] = ib;
        idx[partner] = ia;
    }
}
