// In-place optimizer updates of x (any strided view) with a and b broadcast to it:
//   KIND 0 axpy:    x += y * alpha            (y = a; alpha = s0; s0 == 1 adds y as is)
//   KIND 1 lerp:    x += (y - x) * w  if w < 0.5, else  x = y - (y - x) * (1 - w)
//   KIND 2 addcmul: x += (a * value) * b      (value = s0)
//   KIND 3 addcdiv: x += (a * value) / b
//   KIND 4 maximum: x = max(x, y), NaN-propagating
// in the reference's order of roundings. Indexer operands: 0 = x, 1 = a, 2 = b.
//   p[EXTRA] s0 (f32)
// The host copies a or b first when it shares x's buffer (one buffer cannot be bound
// for reading and for writing in one dispatch).

@group(0) @binding(1) var<storage, read_write> x: array<TA>;
@group(0) @binding(2) var<storage, read> a: array<TA>;
@group(0) @binding(3) var<storage, read> b: array<TA>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wid, nwg, lid);
    if (i >= p[0]) { return; }
    let o = offsets(i);
    let xv = f32(x[o.x]);
    let av = f32(a[o.y]);
    let s0 = pf(EXTRA);
    var r: f32;
    if (KIND == 0u) {
        if (s0 == 1.0) { r = xv + av; } else { r = xv + av * s0; }
    } else if (KIND == 1u) {
        let diff = av - xv;
        if (s0 < 0.5) { r = xv + diff * s0; } else { r = av - diff * (1.0 - s0); }
    } else if (KIND == 2u) {
        r = xv + (av * s0) * f32(b[o.z]);
    } else if (KIND == 3u) {
        r = xv + (av * s0) / f32(b[o.z]);
    } else {
        r = xv;
        if (isnan_f(av) || av > xv) { r = av; }
        if (isnan_f(xv)) { r = xv; }
    }
    x[o.x] = TA(r);
}
